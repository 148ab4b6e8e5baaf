"""MSD metadata files into ``catalog.lmdb``.

- ``unique_tracks.txt``: ``track_id<SEP>song_id<SEP>artist<SEP>title``
- ``track_metadata.db``: SQLite, table ``songs`` (track_id, title, song_id, release, artist_id,
  artist_name, duration, year, ...); only the columns present are read
- genre labels, ``track_id<TAB>genre`` (``#`` comment lines; extra columns such as tagtraum's
  minority genre are ignored, so a track gets its majority genre): ``genres.tsv``, or the
  tagtraum files under their distributed names (``msd_tagtraum_cd2c.cls``,
  ``msd_tagtraum_cd2.cls``, ``msd_tagtraum_cd1.cls``, unzipped). One file is read, the first
  of :data:`GENRE_FILES` a data folder has: ``genres.tsv`` (a file someone prepared on purpose),
  then CD2C (CD2 without its ambiguous labels), CD2 (the most labels, some ambiguous), CD1
  (Top-MAGD's 13 labels); the others are named in the log and the report as not read.

A song can have several tracks (the MSD has duplicates): its fields come from the first track
that has them, its genre from the most frequent label among its tracks, and every track id maps
to it.

Bad input is counted, never fatal line by line, and never silently empties the catalog:

- Ids follow :mod:`pmrs.ingest.rawtext` (UTF-8, no NUL, at most ``MAX_ID_BYTES``); a line or row
  whose id breaks a rule, or a line over ``MAX_LINE_BYTES`` or without its fields, is skipped
  and counted under its file, with its line (or SQLite rowid) and reason in the examples.
- Titles, artists and genres that are not UTF-8 are read as Latin-1 (redistributed MSD copies
  sometimes are; every byte is a Latin-1 character, so nothing is lost) and counted.
- A year or duration of the wrong type (``"unknown"``, a blob) is dropped from its row (the row
  still maps its track) and counted with the file, rowid and value.
- The dataset's own "unknown" codes (:data:`UNKNOWN_CODES`: ``-1`` for a duration or year, ``0``
  for a year) are not wrong types: the value is unknown (stored as 0) and counted by field in
  ``unknown_values``.
- A file that has lines or rows but not one usable (a garbage ``unique_tracks.txt``, a UTF-16
  file, a ``songs`` table of integer ids) raises :class:`IngestError` before anything is written,
  so a good catalog is never replaced by an empty one.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..catalog import write_catalog
from .errors import IngestError
from .lastfm import LastfmReport, read_lastfm
from .rawtext import (TOO_LONG, check_input_file, id_problem, iter_lines, quote, read_head,
                      sniff_encoding)

log = logging.getLogger(__name__)

_EXAMPLES = 5
_SEP = b"<SEP>"
WRONG_FIELDS = "wrong field count"
UNIQUE_TRACKS_FORMAT = "track_id<SEP>song_id<SEP>artist<SEP>title"
GENRES_FORMAT = "track_id<TAB>genre"
#: Genre files a data folder is searched for, in order of preference (the first found is read).
GENRE_FILES = ("genres.tsv", "msd_tagtraum_cd2c.cls", "msd_tagtraum_cd2.cls", "msd_tagtraum_cd1.cls")
GENRE_CHOICE = ("the first found of " + ", ".join(GENRE_FILES) +
                " (a prepared genres.tsv, then tagtraum CD2C: CD2 without its ambiguous labels, "
                "then CD2, then CD1)")


def find_genre_file(data_dir: str | Path | None) -> tuple[Path | None, list[Path]]:
    """The genre file of ``data_dir`` to read (the first of :data:`GENRE_FILES` it has, or
    ``None``) and the other genre files it has, which are not read."""
    if data_dir is None:
        return None, []
    found = [Path(data_dir) / name for name in GENRE_FILES if (Path(data_dir) / name).exists()]
    return (found[0] if found else None), found[1:]
_TEXT_COLUMNS = ("title", "release", "artist_id", "artist_name")
#: The values ``track_metadata.db`` uses for "unknown", per column.
UNKNOWN_CODES = {"duration": (-1.0,), "year": (-1, 0)}


@dataclass
class MetadataReport:
    """What happened to the metadata files: counts of songs and tracks, and per file the lines
    or rows skipped (``malformed``) and the values dropped or read as Latin-1."""

    sources: dict[str, str] = field(default_factory=dict)
    songs: int = 0
    tracks: int = 0
    songs_with_genre: int = 0
    genres: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    bad_values: dict[str, int] = field(default_factory=dict)
    latin1_values: dict[str, int] = field(default_factory=dict)
    #: values the dataset marks unknown (:data:`UNKNOWN_CODES`), by field (``"year"``, ``"duration"``)
    unknown_values: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    lastfm: dict | None = None  # asdict(LastfmReport) when Last.fm input was given
    mismatched_links: int = 0   # track -> song links sid_mismatches.txt removed
    #: the genre file read: ``{"file", "labels" (tracks labelled), "tracks_matched" (of them, tracks
    #: the catalog maps to a song)}``; ``None`` when no genre file was given
    genre_file: dict | None = None

    def bad(self, source: str, line: int, text: str | bytes, reason: str = "", *,
            unit: str = "line", counter: str = "malformed") -> None:
        """Count a skipped line (``unit="line"``) or SQLite row (``unit="row"``) of ``source``;
        ``counter="bad_values"`` for a value dropped from a row that is kept."""
        counts = getattr(self, counter)
        counts[source] = counts.get(source, 0) + 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"file": source, unit: line, "reason": reason, "text": quote(text)})


def _text(raw: bytes, report: MetadataReport, source: str) -> str:
    """A display text field: UTF-8, else Latin-1 (counted)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.latin1_values[source] = report.latin1_values.get(source, 0) + 1
        return raw.decode("latin-1")


def _open_text(path: Path, what: str, expected: str):
    path = check_input_file(path, what, expected)
    sniff_encoding(path, read_head(path))
    try:
        return path.open("rb")
    except OSError as exc:
        raise IngestError(f"{what}: cannot open {path}: {exc.strerror}") from None


def _no_good_line(path: Path, report: MetadataReport, lines: int, expected: str) -> IngestError:
    examples = "; ".join(f"line {e['line']}: {e['reason']}: {e['text'][:80]!r}"
                         for e in report.examples if e["file"] == path.name and "line" in e)
    return IngestError(f"{path}: not one usable line in {lines} (expected {expected}); "
                       f"{examples or 'no example'}. Nothing was written: the catalog is unchanged")


def read_unique_tracks(path: Path, report: MetadataReport) -> list[tuple[str, str, str, str]]:
    """``(track_id, song_id, artist, title)`` for each good line; bad lines are counted in
    ``report``. Raises :class:`IngestError` when the file is not a readable UTF-8 text file or
    has lines but none usable."""
    path = Path(path)
    rows = []
    nonblank = 0
    with _open_text(path, "unique_tracks", UNIQUE_TRACKS_FORMAT) as fh:
        for number, line in iter_lines(fh):
            if line is None:
                nonblank += 1
                report.bad(path.name, number, b"", TOO_LONG)
                continue
            if not line.strip():
                continue
            nonblank += 1
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            parts = line.split(_SEP)
            if len(parts) != 4:
                report.bad(path.name, number, line, WRONG_FIELDS)
                continue
            track_id, song_id = parts[0].strip(), parts[1].strip()
            problem = id_problem(track_id) or id_problem(song_id)
            if problem:
                report.bad(path.name, number, line, problem)
                continue
            rows.append((track_id.decode(), song_id.decode(), _text(parts[2].strip(), report, path.name),
                         _text(parts[3].strip(), report, path.name)))
    if nonblank and not rows:
        raise _no_good_line(path, report, nonblank, UNIQUE_TRACKS_FORMAT)
    return rows


def read_track_metadata(path: Path, report: MetadataReport) -> list[dict]:
    """The ``songs`` table's rows as dicts (``track_id``, ``song_id``, and whichever of ``title``,
    ``release``, ``artist_id``, ``artist_name``, ``duration``, ``year`` exist), checked: rows with
    an unusable id are skipped, values of the wrong type dropped, both counted in ``report``.
    Raises :class:`IngestError` naming the file when it is not a readable SQLite file with that
    table, or has rows but none usable."""
    path = check_input_file(Path(path), "track_metadata", "an SQLite file with a `songs` table")
    source = path.name
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise IngestError(f"{path}: cannot open as SQLite: {exc}") from None
    con.text_factory = bytes  # decode here: a non-UTF-8 title must not reject the whole file
    try:
        cols = [r[1].decode("utf-8", "replace") for r in con.execute("PRAGMA table_info(songs)")]
        if "track_id" not in cols or "song_id" not in cols:
            raise IngestError(f"{path}: table `songs` with track_id and song_id columns not found "
                              f"(columns: {', '.join(cols) or 'no such table'})")
        wanted = [c for c in ("track_id", "song_id", *_TEXT_COLUMNS, "duration", "year") if c in cols]
        cur = con.execute(f"SELECT rowid, {', '.join(wanted)} FROM songs")
        out, total = [], 0
        for raw in cur:
            total += 1
            row = _check_row(raw[0], dict(zip(wanted, raw[1:])), report, source)
            if row is not None:
                out.append(row)
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path}: not a readable SQLite track metadata file: {exc}") from None
    finally:
        con.close()
    if total and not out:
        examples = "; ".join(f"row {e['row']}: {e['reason']}: {e['text']}" for e in report.examples
                             if e["file"] == source and "row" in e)
        raise IngestError(f"{path}: not one usable row in {total} of table `songs`; {examples}. "
                          "Nothing was written: the catalog is unchanged")
    return out


def _kind(value) -> str:
    return {int: "an integer", float: "a real", bytes: "text", type(None): "NULL"}.get(type(value), "a blob")


def _shown(value) -> str:
    return quote(value) if isinstance(value, bytes) else repr(value)


def _check_row(rowid: int, row: dict, report: MetadataReport, source: str) -> dict | None:
    """One ``songs`` row with ids as text and typed values, or ``None`` (counted) when its ids
    cannot be used."""
    for key in ("track_id", "song_id"):
        value = row[key]
        if not isinstance(value, bytes):
            report.bad(source, rowid, _shown(value), f"{key} is {_kind(value)}, not text", unit="row")
            return None
        problem = id_problem(value.strip())
        if problem:
            report.bad(source, rowid, value, f"{key}: {problem}", unit="row")
            return None
        row[key] = value.strip().decode()
    for key in _TEXT_COLUMNS:
        if key not in row:
            continue
        value = row[key]
        if isinstance(value, bytes):
            row[key] = _text(value, report, source)
        elif isinstance(value, (int, float)):
            row[key] = str(value)
        else:
            row[key] = ""
    if "year" in row:
        row["year"] = _typed(row["year"], int, rowid, "year", report, source)
    if "duration" in row:
        row["duration"] = _typed(row["duration"], float, rowid, "duration", report, source)
    return row


def _typed(value, kind: type, rowid: int, key: str, report: MetadataReport, source: str):
    """``value`` as ``kind`` (year: an integer; duration: seconds, finite, not negative), or 0
    when missing or unknown (:data:`UNKNOWN_CODES`, counted in ``unknown_values``); a value that
    is neither is dropped and counted."""
    if value is None:
        return kind(0)
    number = None
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, bytes):
        try:
            number = float(value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            number = None
    if number is not None and number in UNKNOWN_CODES.get(key, ()):
        report.unknown_values[key] = report.unknown_values.get(key, 0) + 1
        return kind(0)
    if number is not None and math.isfinite(number) and number >= 0 \
            and (kind is float or float(number).is_integer()):
        return kind(number)
    wanted = "an integer year" if kind is int else "a duration in seconds"
    report.bad(source, rowid, _shown(value), f"{key} is {_kind(value)}, not {wanted}", unit="row",
               counter="bad_values")
    return kind(0)


def _unknown_codes() -> str:
    return "; ".join(f"{k} {' or '.join(str(v) for v in codes)}" for k, codes in UNKNOWN_CODES.items())


def read_genres(path: Path, report: MetadataReport) -> dict[str, str]:
    """``{track_id: genre}``, from the second column (tagtraum's majority genre; the first label
    of a track wins); bad lines counted. Raises
    :class:`IngestError` when the file is not readable UTF-8 text or has lines but none usable."""
    path = Path(path)
    out: dict[str, str] = {}
    nonblank = 0
    with _open_text(path, "genres", GENRES_FORMAT) as fh:
        for number, line in iter_lines(fh):
            if line is None:
                nonblank += 1
                report.bad(path.name, number, b"", TOO_LONG)
                continue
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip() or line.lstrip().startswith(b"#"):
                continue
            nonblank += 1
            parts = line.split(b"\t")
            genre = parts[1].strip() if len(parts) >= 2 else b""
            if not genre:
                report.bad(path.name, number, line, WRONG_FIELDS)
                continue
            track_id = parts[0].strip()
            problem = id_problem(track_id)
            if problem:
                report.bad(path.name, number, line, problem)
                continue
            out.setdefault(track_id.decode(), _text(genre, report, path.name))
    if nonblank and not out:
        raise _no_good_line(path, report, nonblank, GENRES_FORMAT)
    return out


#: A line of the MSD's ``sid_mismatches.txt``: ``ERROR: <SOxxx TRxxx> artist - title != ...``.
_MISMATCH = re.compile(rb"^ERROR: <(SO[A-Z0-9]+) (TR[A-Z0-9]+)>")


def read_sid_mismatches(path: Path, report: MetadataReport) -> set[tuple[str, str]]:
    """The (song id, track id) pairs the Million Song Dataset lists as wrongly matched; other
    lines are counted as malformed (blank lines and ``#`` comments are skipped silently)."""
    source = path.name
    pairs: set[tuple[str, str]] = set()
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            m = _MISMATCH.match(line)
            if m is None:
                report.bad(source, n, raw, "not an 'ERROR: <SOxxx TRxxx> ...' line")
                continue
            pairs.add((m.group(1).decode(), m.group(2).decode()))
    return pairs


def build_catalog(out_path: Path, *, unique_tracks: Path | None = None,
                  track_metadata: Path | None = None, genres: Path | None = None,
                  sid_mismatches: Path | None = None,
                  lastfm: Sequence[Path] = (), max_similars: int | None = None,
                  show_progress: bool | None = None, extra_songs: Sequence[dict] = ()) -> MetadataReport:
    """Merge the given metadata files into ``out_path`` (``catalog.lmdb``), replacing it only
    when every file could be read and the result holds at least one song (:class:`IngestError`
    otherwise, with the old catalog untouched). ``sid_mismatches``: the MSD's list of wrong
    song/track matches, whose links are removed (so neither genre labels nor Last.fm data of such
    a track reach the song; the song keeps the title and artist its files give it). ``lastfm``: Last.fm inputs
    (:mod:`pmrs.ingest.lastfm`), whose tags and similars (the ``max_similars`` highest scores)
    are stored per song. ``extra_songs``: songs added live (``pmrs.live``; their fields and tags,
    the tags at full weight), for ids the files do not have."""
    report = MetadataReport()
    songs: dict[str, dict] = {}
    track_song: dict[str, str] = {}

    def song(song_id: str) -> dict:
        return songs.setdefault(song_id, {"title": "", "artist": "", "artist_id": "", "release": "",
                                          "year": 0, "duration": 0.0, "genre": "", "track_ids": []})

    if unique_tracks is not None:
        report.sources["unique_tracks"] = str(unique_tracks)
        for track_id, song_id, artist, title in read_unique_tracks(unique_tracks, report):
            s = song(song_id)
            track_song.setdefault(track_id, song_id)
            if track_id not in s["track_ids"]:
                s["track_ids"].append(track_id)
            s["artist"] = s["artist"] or artist
            s["title"] = s["title"] or title
    if track_metadata is not None:
        report.sources["track_metadata"] = str(track_metadata)
        for row in read_track_metadata(track_metadata, report):
            s = song(row["song_id"])
            track_song.setdefault(row["track_id"], row["song_id"])
            if row["track_id"] not in s["track_ids"]:
                s["track_ids"].append(row["track_id"])
            for key, src in (("title", "title"), ("artist", "artist_name"), ("artist_id", "artist_id"),
                             ("release", "release")):
                if not s[key] and row.get(src):
                    s[key] = row[src]
            if not s["year"] and row.get("year"):
                s["year"] = row["year"]
            if not s["duration"] and row.get("duration"):
                s["duration"] = round(row["duration"], 3)
    if sid_mismatches is not None:
        report.sources["sid_mismatches"] = str(sid_mismatches)
        for song_id, track_id in sorted(read_sid_mismatches(sid_mismatches, report)):
            if track_song.get(track_id) == song_id:
                del track_song[track_id]
                songs[song_id]["track_ids"].remove(track_id)
                report.mismatched_links += 1
        if report.mismatched_links:
            log.info("%s: removed %d wrong track -> song link(s)", sid_mismatches, report.mismatched_links)
    if genres is not None:
        report.sources["genres"] = str(genres)
        by_song: dict[str, Counter] = defaultdict(Counter)
        unknown_tracks = 0
        labels = read_genres(genres, report)
        for track_id, genre in labels.items():
            song_id = track_song.get(track_id) or (track_id if track_id in songs else None)
            if song_id is None:
                unknown_tracks += 1
                continue
            by_song[song_id][genre] += 1
        for song_id, votes in by_song.items():
            songs[song_id]["genre"] = votes.most_common(1)[0][0]
        report.genre_file = {"file": str(genres), "labels": len(labels),
                             "tracks_matched": len(labels) - unknown_tracks}
        log.info("%s: %d genre labels read, %d of their tracks in the catalog", genres, len(labels),
                 len(labels) - unknown_tracks)
        if unknown_tracks:
            log.warning("%s: %d genre labels for tracks not in the metadata", genres, unknown_tracks)
    live_tags: list = []
    for extra in extra_songs:
        if extra["song_id"] in songs:
            continue
        s = song(extra["song_id"])
        for key in ("title", "artist", "release", "genre"):
            s[key] = str(extra.get(key) or "")
        s["year"] = int(extra.get("year") or 0)
        for key in ("mbid", "spotify_uri", "duration", "track_number"):   # (songs of a music folder)
            if extra.get(key):
                s[key] = extra[key]
        if extra.get("tags"):
            live_tags.append((extra["song_id"], {str(t): 100.0 for t in extra["tags"]}, None))
    if not songs:
        given = ", ".join(report.sources.values()) or "no metadata file given"
        raise IngestError(f"no song in the metadata files ({given}); the catalog is unchanged")
    report.songs = len(songs)
    report.tracks = len(track_song)
    genre_counts = Counter(s["genre"] for s in songs.values() if s["genre"])
    report.genres = dict(sorted(genre_counts.items()))
    report.songs_with_genre = sum(genre_counts.values())
    for source, n in report.malformed.items():
        log.warning("%s: skipped %d malformed line(s) or row(s)", source, n)
    for source, n in report.bad_values.items():
        log.warning("%s: dropped %d value(s) of the wrong type", source, n)
    if report.unknown_values:
        log.info("%s: unknown values (the dataset's %s): %s", Path(track_metadata).name if track_metadata else "",
                 _unknown_codes(), ", ".join(f"{k} {n}" for k, n in report.unknown_values.items()))
    for source, n in report.latin1_values.items():
        log.info("%s: %d text value(s) not UTF-8, read as Latin-1", source, n)
    info = {"songs": report.songs, "tracks": report.tracks, "genres": sorted(genre_counts),
            "sources": report.sources}
    records, lfm = live_tags, None
    if lastfm:
        lfm = LastfmReport()
        records = itertools.chain(
            read_lastfm(lastfm, lambda t: track_song.get(t) or (t if t in songs else None), lfm,
                        show_progress=show_progress), live_tags)

    def final_info() -> dict:
        if lfm is not None:
            info["lastfm"] = {"songs_with_tags": lfm.songs_with_tags,
                              "songs_with_similars": lfm.songs_with_similars, "sources": lfm.sources}
        return info

    write_catalog(out_path, sorted(songs.items()), sorted(track_song.items()), final_info, records,
                  max_similars=max_similars)
    if lfm is not None:
        report.lastfm = asdict(lfm)
        log.info("Last.fm: %d songs with tags, %d with similars (%d tracks read, %d unknown)",
                 lfm.songs_with_tags, lfm.songs_with_similars, lfm.tracks, lfm.tracks_unknown)
    return report
