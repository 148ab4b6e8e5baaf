"""Taking the write log into the next rebuild, so that nothing is counted twice or lost.

``pmrs ingest`` (unless ``--no-live``) reads every write up to the log's last sequence number
``N`` at that moment: the logged plays (and likes, as ``LIKE_PLAYS`` plays each) are added to the triplets' counts, the logged songs to
the catalog (their fields and tags, tags at full weight), and their clips are written to
``<workdir>/live/audio/<song_id><ext>``, where ``pmrs extract --live`` finds them. ``N`` is
recorded in ``interactions/live.json``; ``indexer build`` copies it into the bundle's manifest
(``live_seq``), and a server replays only the writes after it. A write made while the cycle runs
has a larger number, so the server keeps applying it on top of the new bundle until the next
cycle takes it in.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..artifacts import read_json
from ..interactions import Interactions, capped_counts
from .feedback import LIKE, LIKE_PLAYS, UNDO_LIKE
from .log import FEEDBACK, LIVE_DIR, PLAYS, SONG, WriteLog, log_path

log = logging.getLogger(__name__)

LIVE_AUDIO_DIR = "audio"
LIVE_FILE = "live.json"     # in the interactions folder: {"live_seq", "plays", "songs"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class LoggedWrites:
    """The writes of a log up to ``upto``: plays as (user, song, count, the time the write was
    logged in epoch seconds), songs' fields."""

    upto: int = 0
    plays: list[tuple[str, str, int, float]] = field(default_factory=list)
    songs: list[dict] = field(default_factory=list)
    clips: dict[str, tuple[int, str]] = field(default_factory=dict)   # song_id -> (seq, file name)


def read_logged(workdir: str | os.PathLike) -> LoggedWrites | None:
    """Every write of the work directory's log up to its last one now; ``None`` without a log."""
    if not log_path(workdir).is_file():
        return None
    with WriteLog.of(workdir) as wlog:
        out = LoggedWrites(upto=wlog.last_seq())
        likes: dict[tuple[str, str], list[int]] = {}   # (user, song) -> its likes' places in out.plays
        undone: set[int] = set()
        for w in wlog.since(0, upto=out.upto):
            if w.kind == PLAYS:
                out.plays.extend((w.body["user_id"], s, int(c), w.written_at) for s, c in w.body["plays"])
            elif w.kind == FEEDBACK and w.body.get("action") == LIKE:   # a like trains as plays
                likes.setdefault((w.body["user_id"], w.body["song_id"]), []).append(len(out.plays))
                out.plays.append((w.body["user_id"], w.body["song_id"], LIKE_PLAYS, w.written_at))
            elif w.kind == FEEDBACK and w.body.get("action") == UNDO_LIKE:   # ... until undone
                undone.update(likes.pop((w.body["user_id"], w.body["song_id"]), ()))
            elif w.kind == SONG:
                out.songs.append(w.body)
                clip = wlog.clip(w.seq)
                if clip is not None:
                    out.clips[w.body["song_id"]] = (w.seq, clip[0])
        if undone:
            out.plays = [p for i, p in enumerate(out.plays) if i not in undone]
    return out


def merge_plays(inter: Interactions, plays: list[tuple]) -> Interactions:
    """``inter`` with ``plays`` added (new users and songs get rows; counts of a pair add up in
    int64, capped as stored). A play ``(user, song, count, logged_at)`` carries its time: the
    pair's first and last play times take it in (``pmrs.ingest.aggregate.combine``)."""
    if not plays:
        return inter
    from ..ingest.aggregate import combine

    keys: dict[tuple[str, str], list] = {}
    for p in plays:
        user, song, count = p[0], p[1], int(p[2])
        at = int(p[3]) if len(p) > 3 and p[3] else 0
        k = keys.setdefault((user, song), [0, 0, 0])
        k[0] += count
        if at:
            k[1] = at if not k[1] else min(k[1], at)
            k[2] = max(k[2], at)
    users = sorted({u for u, _ in keys})
    songs = sorted({s for _, s in keys})
    u_index = {u: i for i, u in enumerate(users)}
    s_index = {s: i for i, s in enumerate(songs)}
    pairs = sorted(keys, key=lambda k: (u_index[k[0]], s_index[k[1]]))
    rows = np.asarray([u_index[u] for u, _ in pairs], np.int64)
    cols = np.asarray([s_index[s] for _, s in pairs], np.int64)
    vals = np.asarray([keys[k][0] for k in pairs], np.int64)
    matrix = sp.csr_matrix((capped_counts(vals), (rows, cols)), shape=(len(users), len(songs)))
    width = lambda ids: max(1, max(len(x.encode()) for x in ids))  # noqa: E731
    time = {"first_played": np.asarray([keys[k][1] for k in pairs], np.int64),
            "last_played": np.asarray([keys[k][2] for k in pairs], np.int64),
            "played_ms": np.full(len(pairs), -1, np.int64)}
    logged = Interactions(matrix=matrix,
                          user_ids=np.asarray([u.encode() for u in users], dtype=f"S{width(users)}"),
                          song_ids=np.asarray([s.encode() for s in songs], dtype=f"S{width(songs)}"),
                          time=time)
    return combine([inter, logged])


def write_clips(workdir: str | os.PathLike, logged: LoggedWrites) -> Path:
    """Write the logged clips to ``<workdir>/live/audio/<song_id><ext>`` (the ones not there yet)."""
    folder = Path(workdir) / LIVE_DIR / LIVE_AUDIO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if not logged.clips:
        return folder
    with WriteLog.of(workdir) as wlog:
        for song_id, (seq, name) in logged.clips.items():
            suffix = Path(name).suffix.lower()
            suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"
            target = folder / f"{song_id}{suffix}"
            if target.exists() or _SAFE.search(song_id):
                if _SAFE.search(song_id):
                    log.warning("live song %r: its id is not a safe file name; its clip is not exported", song_id)
                continue
            clip = wlog.clip(seq)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(clip[1])
            os.replace(tmp, target)
    return folder


def live_seq_of(interactions_dir: str | os.PathLike) -> int:
    """The last write-log sequence number the ingested interactions include (0: none)."""
    path = Path(interactions_dir) / LIVE_FILE
    return int(read_json(path).get("live_seq", 0)) if path.is_file() else 0
