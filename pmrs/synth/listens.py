"""The synthetic world's plays as listening events with times, in the formats people's data come in.

``pmrs synth --format FORMAT`` writes the plays that ``train_triplets.txt`` would hold as events
instead, so that the demo and the tests take the path a user's own data takes (reading, song
resolution by name, time, skips):

- ``events-csv``, ``events-parquet``, ``events-jsonl``: one service's table of events,
  ``events/listens.<ext>`` with columns ``user_id, artist, title, album, played_at (ISO 8601 UTC),
  ms_played, skipped`` (no song ids: songs are found by name);
- ``spotify``: one folder per person, ``<person>/Streaming_History_Audio_<years>_0.json`` (the
  extended streaming history: ``ts``, ``ms_played``, ``master_metadata_*``, ``spotify_track_uri``,
  ``reason_end``, ``skipped``);
- ``lastfm``: ``<person>/scrobbles.csv`` with the header ``uts,utc_time,artist,artist_mbid,album,
  album_mbid,track,track_mbid``, newest first (a scrobble is a play: skips are never scrobbled);
- ``listenbrainz``: ``<person>/listens.jsonl``, one listen a line (``listened_at``,
  ``track_metadata``).

Every play of a (user, song) pair of the triplets becomes one listen at a time drawn over two
years; a share of extra listens are skips (under 30 s; the formats that record skips say so), which
must not count as plays. A song's duration is its catalog duration.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..artifacts import tmp_path as _tmp_path
from ..artifacts import write_text
from .world import FORMATS, Catalog
#: The listens span these two years (UTC).
START = int(dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc).timestamp())
SPAN_S = 2 * 365 * 86400
#: Extra skipped listens, as a share of the plays.
SKIP_SHARE = 0.1
EVENTS_DIR = "events"


def listens(triplets: tuple[np.ndarray, np.ndarray, np.ndarray], catalog: Catalog, seed: int) -> dict:
    """One row per listen: ``user`` and ``song`` rows (into the triplets' id lists), ``ts``
    (epoch s), ``ms`` played, ``skipped``; plays first drawn per pair, then the skips."""
    users, songs, counts = (np.asarray(a, np.int64) for a in triplets)
    rng = np.random.default_rng([seed, 7])
    u = np.repeat(users, counts)
    s = np.repeat(songs, counts)
    n_skip = int(round(SKIP_SHARE * len(u)))
    pick = rng.integers(0, max(len(u), 1), n_skip) if len(u) else np.zeros(0, np.int64)
    u = np.concatenate([u, u[pick]])
    s = np.concatenate([s, s[pick]])
    skipped = np.concatenate([np.zeros(len(u) - n_skip, bool), np.ones(n_skip, bool)])
    ts = START + rng.integers(0, SPAN_S, len(u))
    full = (np.asarray(catalog.duration_s, np.float64)[s] * 1000).astype(np.int64)
    ms = np.where(skipped, rng.integers(3_000, 25_000, len(u)), np.maximum(full, 31_000))
    order = np.lexsort((ts, u))
    return {"user": u[order], "song": s[order], "ts": ts[order], "ms": ms[order], "skipped": skipped[order]}


def write_listens(out: Path, fmt: str, triplets, user_ids: np.ndarray, catalog: Catalog, seed: int) -> int:
    """Write the plays of ``triplets`` (user rows, song rows, counts) as listens in ``fmt`` under
    ``out``; returns the number of listens written (skips included)."""
    if fmt not in FORMATS or fmt == "triplets":
        raise ValueError(f"format must be one of {', '.join(FORMATS[1:])}, got {fmt!r}")
    ev = listens(triplets, catalog, seed)
    users = np.asarray([x.decode() for x in user_ids], dtype=object)[ev["user"]]
    artists = np.asarray(catalog.artist_names, dtype=object)[np.asarray(catalog.artist)[ev["song"]]]
    titles = np.asarray(catalog.titles, dtype=object)[ev["song"]]
    albums = np.asarray(catalog.releases, dtype=object)[ev["song"]]
    iso = np.asarray([dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                      for t in ev["ts"]], dtype=object)
    if fmt.startswith("events-"):
        table = pa.table({"user_id": users.tolist(), "artist": artists.tolist(), "title": titles.tolist(),
                          "album": albums.tolist(), "played_at": iso.tolist(), "ms_played": ev["ms"],
                          "skipped": ev["skipped"]})
        folder = out / EVENTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        ext = {"events-csv": "csv", "events-parquet": "parquet", "events-jsonl": "jsonl"}[fmt]
        path = folder / f"listens.{ext}"
        tmp = _tmp_path(path)
        try:
            if ext == "csv":
                pacsv.write_csv(table, tmp)
            elif ext == "parquet":
                pq.write_table(table, tmp)
            else:
                with tmp.open("w", encoding="utf-8") as fh:
                    for row in table.to_pylist():
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return table.num_rows
    # personal exports: one folder per person
    starts = np.flatnonzero(np.r_[True, ev["user"][1:] != ev["user"][:-1]])
    bounds = list(zip(starts, np.r_[starts[1:], len(ev["user"])]))
    uri_of = _spotify_uris(catalog, seed)
    for lo, hi in bounds:
        person = out / users[lo]
        person.mkdir(parents=True, exist_ok=True)
        rows = range(lo, hi)
        if fmt == "spotify":
            data = [{"ts": iso[i], "username": "synthetic-listener", "platform": "Linux",
                     "ms_played": int(ev["ms"][i]), "conn_country": "ZZ", "ip_addr_decrypted": "192.0.2.1",
                     "user_agent_decrypted": "unknown", "master_metadata_track_name": titles[i],
                     "master_metadata_album_artist_name": artists[i],
                     "master_metadata_album_album_name": albums[i],
                     "spotify_track_uri": uri_of[int(ev["song"][i])], "episode_name": None,
                     "episode_show_name": None, "spotify_episode_uri": None,
                     "reason_start": "trackdone", "reason_end": "fwdbtn" if ev["skipped"][i] else "trackdone",
                     "shuffle": False, "skipped": bool(ev["skipped"][i]), "offline": False,
                     "offline_timestamp": 0, "incognito_mode": False} for i in rows]
            write_text(person / "Streaming_History_Audio_2019-2020_0.json", json.dumps(data, ensure_ascii=False))
        elif fmt == "lastfm":
            lines = ["uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid"]
            for i in reversed([i for i in rows if not ev["skipped"][i]]):   # newest first, plays only
                t = dt.datetime.fromtimestamp(int(ev["ts"][i]), dt.timezone.utc)
                lines.append(",".join([str(int(ev["ts"][i])), _csv(t.strftime("%d %b %Y, %H:%M")),
                                       _csv(artists[i]), "", _csv(albums[i]), "", _csv(titles[i]), ""]))
            write_text(person / "scrobbles.csv", "\n".join(lines) + "\n")
        else:   # listenbrainz: a listen is submitted once played enough; skips are not sent
            lines = [json.dumps({"listened_at": int(ev["ts"][i]), "track_metadata": {
                "artist_name": artists[i], "track_name": titles[i], "release_name": albums[i],
                "additional_info": {"duration_ms": int(ev["ms"][i]), "submission_client": "pmrs synth"}}},
                ensure_ascii=False) for i in rows if not ev["skipped"][i]]
            write_text(person / "listens.jsonl", "\n".join(lines) + "\n")
    return len(ev["user"])


def _spotify_uris(catalog: Catalog, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 8])
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
    return ["spotify:track:" + "".join(rng.choice(alphabet, 22)) for _ in range(len(catalog.song_ids))]


def _csv(value: str) -> str:
    v = str(value)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v
