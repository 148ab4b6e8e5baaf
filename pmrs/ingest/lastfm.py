"""The Last.fm dataset (the MSD's tags and similar tracks) into ``catalog.lmdb``.

Both distributed forms are read, and the standard names below are the only place they are spelled:

- the JSON tree (``lastfm_train/``, ``lastfm_test/``, ``lastfm_subset/``): ``A/B/C/TRxxxx.json``,
  each ``{"track_id", "artist", "title", "timestamp", "tags": [[tag, "weight 0-100"], ...],
  "similars": [[track_id, score], ...]}``;
- ``lastfm_tags.db`` (SQLite: ``tids(tid)``, ``tags(tag)``, ``tid_tag(tid, tag, val)``, where
  ``tid_tag.tid`` and ``tid_tag.tag`` are rowids of the other two) and ``lastfm_similars.db``
  (``similars_src(tid, target)``, ``target`` one string ``TRxxx,0.87,TRyyy,0.45,...``).

Track ids become song ids through the catalog's track -> song mapping (a song with several
tracks gets the union of their tags and similars, the highest weight or score winning). Bad input
is counted in a :class:`LastfmReport` and never stops the ingest: tracks the catalog does not
know, tracks with an empty tag list, JSON files that do not parse or are not a track object,
tag weights or similar scores that are not numbers in range (the entry is dropped), ``target``
strings that are not id,score pairs (the row is skipped), rows of ``tid_tag`` whose rowids point
nowhere. Ids follow :mod:`pmrs.ingest.rawtext` (UTF-8, no NUL, at most ``MAX_ID_BYTES``). A file
that is not SQLite, or lacks its table, is an :class:`IngestError` naming it, as for
``track_metadata.db``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from ..catalog import LastfmRecord
from .errors import IngestError
from .rawtext import check_input_file, id_problem, quote

log = logging.getLogger(__name__)

#: Folders of the JSON form, by the names the dataset is distributed under.
JSON_DIRS = ("lastfm_train", "lastfm_test", "lastfm_subset")
JSON_SUFFIX = ".json"
#: The SQLite form.
TAGS_DB = "lastfm_tags.db"
SIMILARS_DB = "lastfm_similars.db"
#: Tag weights are 0-100 (strings in the JSON form, integers in the SQLite form).
MAX_WEIGHT = 100.0

UNPARSABLE = "unparsable JSON"
NOT_A_TRACK = "not a Last.fm track object"
BAD_TARGET = "malformed target"
DANGLING = "tid or tag rowid points nowhere"
BAD_TAG = "tag not [text, weight 0-100]"
BAD_SIMILAR = "similar not [track id, score >= 0]"
_EXAMPLES = 10


@dataclass
class LastfmReport:
    """What happened to the Last.fm input: per input its kind, what was read and kept, and the
    problems counted (``malformed``: files or rows skipped; ``bad_values``: entries dropped from a
    record that is kept), by reason, with a few examples."""

    sources: dict[str, str] = field(default_factory=dict)
    json_files: int = 0
    tracks: int = 0
    tracks_unknown: int = 0
    tracks_without_tags: int = 0
    tags: int = 0
    similars: int = 0
    similar_targets_unknown: int = 0
    songs_with_tags: int = 0
    songs_with_similars: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    bad_values: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def bad(self, where: str, reason: str, text: str | bytes = "", counter: str = "malformed") -> None:
        counts = getattr(self, counter)
        counts[reason] = counts.get(reason, 0) + 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"where": where, "reason": reason, "text": quote(text)})


def find_lastfm(data_dir: str | os.PathLike | None) -> list[Path]:
    """The Last.fm inputs in ``data_dir`` under their standard names (JSON folders first)."""
    if data_dir is None:
        return []
    d = Path(data_dir)
    found = [d / name for name in JSON_DIRS if (d / name).is_dir()]
    return found + [d / name for name in (TAGS_DB, SIMILARS_DB) if (d / name).exists()]


def input_kind(path: str | os.PathLike) -> str:
    """``"json"`` (a folder: the JSON tree), ``"tags"`` or ``"similars"`` (an SQLite file, told
    apart by its tables); :class:`IngestError` naming the path otherwise."""
    path = Path(path)
    if path.is_dir():
        return "json"
    path = check_input_file(path, "lastfm", f"a JSON folder ({', '.join(JSON_DIRS)}), {TAGS_DB} "
                                            f"or {SIMILARS_DB}")
    tables = _tables(path)
    if {"tids", "tags", "tid_tag"} <= tables:
        return "tags"
    if "similars_src" in tables:
        return "similars"
    raise IngestError(f"{path}: neither a Last.fm tags file (tables tids, tags, tid_tag) nor a "
                      f"similars file (table similars_src); tables: {', '.join(sorted(tables)) or 'none'}")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise IngestError(f"{path}: cannot open as SQLite: {exc}") from None
    con.text_factory = bytes
    return con


def _tables(path: Path) -> set[str]:
    con = _connect(path)
    try:
        return {r[0].decode("utf-8", "replace") for r in
                con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable SQLite file: {exc}") from None
    finally:
        con.close()


def _number(value, low: float, high: float) -> float | None:
    """``value`` (a number or numeric text) as a float in [low, high], else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (bytes, str)):
        try:
            value = float(value.strip() if isinstance(value, str) else value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        return None
    return float(value)


def _track_id(value) -> str | None:
    if isinstance(value, bytes):
        raw = value.strip()
    elif isinstance(value, str):
        raw = value.strip().encode("utf-8", "surrogatepass")
    else:
        return None
    return None if id_problem(raw) else raw.decode()


def _text(value) -> str | None:
    """A tag: UTF-8 text, Latin-1 when it is not (redistributed copies), not empty."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str) or "\x00" in value:
        return None
    value = value.strip()
    return value or None


class _Mapper:
    """Track ids -> song ids, and the records as the catalog stores them."""

    def __init__(self, to_song: Callable[[str], str | None], report: LastfmReport):
        self.to_song = to_song
        self.report = report
        self.tagged: set[str] = set()
        self.similar: set[str] = set()

    def record(self, track_id: str, tags: dict[str, float] | None,
               similars: list[tuple[str, float]] | None) -> LastfmRecord | None:
        r = self.report
        r.tracks += 1
        song = self.to_song(track_id)
        if song is None:
            r.tracks_unknown += 1
            return None
        by_song: dict[str, float] = {}
        for target, score in similars or ():
            other = self.to_song(target)
            if other is None:
                r.similar_targets_unknown += 1
            elif other != song and score > by_song.get(other, -1.0):
                by_song[other] = score
        if tags:
            r.tags += len(tags)
            self.tagged.add(song)
        if by_song:
            r.similars += len(by_song)
            self.similar.add(song)
        if not tags and not by_song:
            return None
        return song, tags or None, by_song or None


def _walk_json(root: Path) -> list[str]:
    """Every ``*.json`` file under ``root`` (paths as text), in sorted order (deterministic merges)."""
    out: list[str] = []
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.name.endswith(JSON_SUFFIX) and e.is_file():
                        out.append(e.path)
        except OSError as exc:
            raise IngestError(f"{d}: cannot list the folder: {exc.strerror}") from None
    out.sort()
    return out


def parse_json_track(raw: bytes, where: str, report: LastfmReport
                     ) -> tuple[str, dict[str, float], list[tuple[str, float]]] | None:
    """One JSON file's ``(track_id, {tag: weight}, [(track_id, score)])``, or ``None`` (counted)
    when it does not parse or is not a track object. Bad tag and similar entries are dropped
    and counted; a tag named twice keeps its highest weight."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        report.bad(where, UNPARSABLE, raw)
        return None
    track_id = _track_id(obj.get("track_id")) if isinstance(obj, dict) else None
    tags_in, sims_in = (obj.get("tags") or [], obj.get("similars") or []) if track_id else (None, None)
    if track_id is None or not isinstance(tags_in, list) or not isinstance(sims_in, list):
        report.bad(where, NOT_A_TRACK, raw)
        return None
    tags: dict[str, float] = {}
    for entry in tags_in:
        # the well-formed case first ([text, "digits"]), checked in full only when it is not
        if type(entry) is list and len(entry) == 2 and type(entry[0]) is str and type(entry[1]) is str \
                and entry[1].isdigit() and entry[0].strip() and "\x00" not in entry[0]:
            tag, weight = entry[0].strip(), float(entry[1])
            if weight > MAX_WEIGHT:
                weight = None
        else:
            tag = _text(entry[0]) if type(entry) is list and len(entry) == 2 else None
            weight = _number(entry[1], 0.0, MAX_WEIGHT) if tag else None
        if weight is None:
            report.bad(where, BAD_TAG, json.dumps(entry)[:200], counter="bad_values")
        elif weight > tags.get(tag, -1.0):
            tags[tag] = weight
    sims: list[tuple[str, float]] = []
    for entry in sims_in:
        if type(entry) is list and len(entry) == 2 and type(entry[0]) is str and type(entry[1]) is float \
                and 0.0 <= entry[1] < math.inf and entry[0].isascii() and 0 < len(entry[0]) <= 64 \
                and entry[0].isalnum():
            sims.append((entry[0], entry[1]))
            continue
        target = _track_id(entry[0]) if type(entry) is list and len(entry) == 2 else None
        score = _number(entry[1], 0.0, math.inf) if target else None
        if score is None:
            report.bad(where, BAD_SIMILAR, json.dumps(entry)[:200], counter="bad_values")
        else:
            sims.append((target, score))
    return track_id, tags, sims


def _read_json_tree(root: Path, mapper: _Mapper, show_progress: bool | None) -> Iterator[LastfmRecord]:
    report = mapper.report
    files = _walk_json(root)
    prefix = len(str(root.parent)) + 1
    log.info("%s: %d JSON files", root, len(files))
    for path in tqdm(files, desc=f"Last.fm {root.name}", unit="file", leave=False,
                     disable=None if show_progress is None else not show_progress):
        report.json_files += 1
        where = path[prefix:]
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            report.bad(where, UNPARSABLE, f"cannot read: {exc.strerror}")
            continue
        parsed = parse_json_track(raw, where, report)
        if parsed is None:
            continue
        track_id, tags, sims = parsed
        if not tags:
            report.tracks_without_tags += 1
        rec = mapper.record(track_id, tags, sims)
        if rec is not None:
            yield rec


def _read_tags_db(path: Path, mapper: _Mapper) -> Iterator[LastfmRecord]:
    report = mapper.report
    con = _connect(path)
    try:
        rows = con.execute("SELECT tid_tag.rowid, tid_tag.tid, tids.tid, tags.tag, tid_tag.val "
                           "FROM tid_tag LEFT JOIN tids ON tids.rowid = tid_tag.tid "
                           "LEFT JOIN tags ON tags.rowid = tid_tag.tag ORDER BY tid_tag.tid, tid_tag.rowid")
        current, track_id, tags = None, None, {}
        for rowid, tid_row, tid, tag, val in rows:
            where = f"{path.name} tid_tag row {rowid}"
            if tid_row != current:
                if track_id is not None:
                    rec = mapper.record(track_id, tags, None)
                    if rec is not None:
                        yield rec
                current, tags = tid_row, {}
                track_id = None if tid is None else _track_id(tid)
                if tid is not None and track_id is None:
                    report.bad(where, NOT_A_TRACK, tid)
            if tid is None or tag is None:
                report.bad(where, DANGLING, f"tid {tid_row!r}, tag rowid points to {tag!r}")
                continue
            name = _text(tag)
            weight = _number(val, 0.0, MAX_WEIGHT)
            if name is None or weight is None:
                report.bad(where, BAD_TAG, f"{tag!r}: {val!r}", counter="bad_values")
            elif track_id is not None and weight > tags.get(name, -1.0):
                tags[name] = weight
        if track_id is not None:
            rec = mapper.record(track_id, tags, None)
            if rec is not None:
                yield rec
        untagged = con.execute("SELECT COUNT(*) FROM tids WHERE rowid NOT IN "
                               "(SELECT DISTINCT tid FROM tid_tag)").fetchone()[0]
        report.tracks_without_tags += int(untagged)
        report.tracks += int(untagged)
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable Last.fm tags file: {exc}") from None
    finally:
        con.close()


def parse_target(target) -> list[tuple[str, float]] | None:
    """``"TRxxx,0.87,TRyyy,0.45"`` as ``[(track_id, score), ...]``; ``None`` when it is not
    id,score pairs (an odd number of fields, a bad id, a score that is not a number >= 0).
    An empty or NULL target is an empty list."""
    if target is None:
        return []
    if isinstance(target, bytes):
        try:
            target = target.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(target, str):
        return None
    target = target.strip()
    if not target:
        return []
    parts = target.split(",")
    if len(parts) % 2:
        return None
    out = []
    for i in range(0, len(parts), 2):
        track_id = _track_id(parts[i])
        score = _number(parts[i + 1], 0.0, math.inf)
        if track_id is None or score is None:
            return None
        out.append((track_id, score))
    return out


def _read_similars_db(path: Path, mapper: _Mapper) -> Iterator[LastfmRecord]:
    report = mapper.report
    con = _connect(path)
    try:
        for rowid, tid, target in con.execute("SELECT rowid, tid, target FROM similars_src ORDER BY rowid"):
            where = f"{path.name} similars_src row {rowid}"
            track_id = _track_id(tid)
            if track_id is None:
                report.bad(where, NOT_A_TRACK, tid if isinstance(tid, (bytes, str)) else repr(tid))
                continue
            pairs = parse_target(target)
            if pairs is None:
                report.bad(where, BAD_TARGET, target if isinstance(target, (bytes, str)) else repr(target))
                continue
            rec = mapper.record(track_id, None, pairs)
            if rec is not None:
                yield rec
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable Last.fm similars file: {exc}") from None
    finally:
        con.close()


def read_lastfm(paths: Sequence[str | os.PathLike], to_song: Callable[[str], str | None] | Mapping[str, str],
                report: LastfmReport, show_progress: bool | None = None) -> Iterator[LastfmRecord]:
    """The catalog records (:data:`pmrs.catalog.LastfmRecord`) of every input in ``paths`` (JSON
    folders, tags and similars SQLite files, told apart by :func:`input_kind`), streamed. Track
    ids become song ids through ``to_song`` (a function or a mapping; ``None``: unknown). Counts
    go to ``report``, including ``songs_with_tags`` and ``songs_with_similars`` once exhausted."""
    if isinstance(to_song, Mapping):
        to_song = to_song.get
    kinds = [(Path(p), input_kind(p)) for p in paths]  # every path checked before anything is read
    return _records(kinds, _Mapper(to_song, report), show_progress)


def _records(kinds: list[tuple[Path, str]], mapper: _Mapper, show_progress: bool | None
             ) -> Iterator[LastfmRecord]:
    report = mapper.report
    t0 = time.perf_counter()
    for path, kind in kinds:
        report.sources[str(path)] = kind
        if kind == "json":
            yield from _read_json_tree(path, mapper, show_progress)
        elif kind == "tags":
            yield from _read_tags_db(path, mapper)
        else:
            yield from _read_similars_db(path, mapper)
    report.songs_with_tags = len(mapper.tagged)
    report.songs_with_similars = len(mapper.similar)
    report.seconds = round(time.perf_counter() - t0, 3)
    for reason, n in {**report.malformed, **report.bad_values}.items():
        log.warning("Last.fm: %d x %s", n, reason)
    if report.tracks_unknown:
        log.warning("Last.fm: %d of %d tracks are not in the catalog (skipped)", report.tracks_unknown,
                    report.tracks)
