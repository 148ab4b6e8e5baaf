"""A service's table of listening events: CSV/TSV, Parquet or JSON Lines into :class:`Listens`.

One row is one listen, or one (user, song, count) aggregate. pyarrow reads the file
(``pyarrow.csv``, ``pyarrow.parquet``, ``pyarrow.json``: measured faster than DuckDB's readers for
producing the whole table, ``bench/events_bench.py``), and every column is converted and checked
with Arrow compute kernels: no Python runs per row on the good path. A folder is read file by file
(names ending ``.csv``, ``.tsv``, ``.txt``, ``.parquet``, ``.pq``, ``.jsonl``, ``.ndjson``,
``.json``, each optionally compressed: ``.gz``, ``.bz2``, ``.zst``) and the results concatenated.

Columns are found by name (:class:`EventsConfig`, ``[ingest.events]``), case-insensitively; a file
without a header names its columns in order with ``columns = [...]``. Columns no setting names
are not read and are listed in :attr:`EventListens.ignored_columns`. Nested JSON objects are
flattened to dotted names (``track_metadata.artist_name``).

Values, per column:

- ``user``, ``song_id``, ``artist``, ``title``, ``album``: text, trimmed; empty is missing. User
  and song ids follow :mod:`pmrs.ids` (at most ``MAX_ID_BYTES`` bytes, no NUL).
- ``timestamp``: epoch seconds or milliseconds (``time_unit = "auto"``: a number of at least
  :data:`MS_FROM` is milliseconds), or ISO 8601 (``2021-03-04T12:34:56Z``, with an offset, with
  fractional seconds, a space for the ``T``, or a date alone); a time without a zone is in
  ``timezone``. Parquet timestamps and dates are taken as they are (naive ones in ``timezone``).
  Times become UTC seconds (fractions dropped). No column: ``ts`` is null (a count table).
- ``count``: a positive whole number (``3`` or ``3.0``); no column: 1.
- ``ms_played`` (or ``seconds_played``, times 1000): a non-negative number; other values become
  null (counted in :attr:`EventListens.nulled`).
- ``skipped``: ``true/false``, ``yes/no``, ``t/f``, ``y/n``, ``1/0``; other values become null.
- ``recording_mbid``: a MusicBrainz recording id (a UUID, or its ``musicbrainz.org/recording/``
  URL), lower-cased; ``spotify_uri``: ``spotify:track:<22 characters>`` or its
  ``open.spotify.com/track/`` URL, as the URI. Other values become null.

A row is dropped under the first reason that applies (:mod:`pmrs.ingest.listens`' reasons, plus
:data:`UNREADABLE_TIME` and the id rules' own): a line pyarrow cannot split into the header's
fields (``MALFORMED``), a line that is not UTF-8 or longer than ``MAX_LINE_BYTES``; no user; a
user or song id breaking the id rule; a count that is not a positive whole number; a time that
is not understood; a time outside :func:`~pmrs.ingest.listens.sane_times`; no song (no id, MBID,
URI, nor artist and title); placeholder names (no id, and the artist or title is a placeholder:
:func:`~pmrs.ingest.listens.is_placeholder`); a zero-length play (``ms_played`` 0). Each reason
keeps its first rows as examples (file, row, the row's values); ``row`` is the line number for
CSV (the header is row 1; blank lines are not counted) and JSON Lines, the row number from 1 for
Parquet. A file with more than ``max_bad_fraction`` of its rows dropped for being unreadable or
wrong (placeholder names and zero-length plays are well-formed rows, and do not count) raises
:class:`IngestError` naming it, as does a file with no user column or nothing naming a song.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..ids import ID_TOO_LONG, MAX_ID_BYTES, NOT_UTF8, NUL_IN_ID
from .errors import IngestError
from .listens import (BAD_COUNT, BAD_TIME, LISTEN_SCHEMA, MALFORMED, NO_SONG, NO_USER, PLACEHOLDER,
                      ZERO_LENGTH, Dropped, Listens, is_placeholder, sane_times)
from .rawtext import TOO_LONG, CleanLines, check_input_file, open_stream, quote, sniff_encoding

log = logging.getLogger(__name__)

__all__ = ["EventsConfig", "EventListens", "MS_FROM", "UNREADABLE_TIME", "find_event_files",
           "read_events", "read_event_file"]

#: The settings' section in a TOML config.
SECTION = "ingest.events"
#: A time that is neither a number nor ISO 8601 (``"yesterday"``, ``"04/03/2021"``).
UNREADABLE_TIME = "time not understood"
#: Epoch numbers at least this large are milliseconds when ``time_unit = "auto"`` (1e11 seconds is
#: the year 5138; 1e11 milliseconds is 1973, before any listen :func:`sane_times` takes).
MS_FROM = 100_000_000_000

#: File names read from a folder (before a compression suffix), by format.
SUFFIXES = {"csv": (".csv", ".tsv", ".txt", ".psv"), "parquet": (".parquet", ".pq"),
            "jsonl": (".jsonl", ".ndjson", ".json")}
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")

#: The roles a column can play, in the order they claim columns (the output column they feed).
ROLES = ("user", "song_id", "recording_mbid", "spotify_uri", "artist", "title", "album", "timestamp",
         "count", "ms_played", "seconds_played", "skipped")
_ID_ROLES = ("song_id", "recording_mbid", "spotify_uri")
# Reasons that say a row is broken (a file made mostly of them is not an event table).
_GARBAGE = frozenset({MALFORMED, NOT_UTF8, TOO_LONG, NO_USER, ID_TOO_LONG, NUL_IN_ID, BAD_COUNT,
                      UNREADABLE_TIME, BAD_TIME, NO_SONG})
_SNIFF_BYTES = 64 * 1024
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MBID_RE = rf"^(?:https?://(?:[a-z]+\.)?musicbrainz\.org/recording/)?(?P<id>{_UUID})/?$"
_SPOTIFY_RE = (r"^(?:spotify:track:|https?://open\.spotify\.com/(?:intl-[a-z]+/)?track/)"
               r"(?P<id>[0-9A-Za-z]{22})(?:\?.*)?$")
_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_WHOLE_RE = r"^\d{1,18}(?:\.0*)?$"
_ISO_RE = (r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
           r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?)?$")
_ZONED_RE = r"(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"


def _names(*names: str) -> tuple[str, ...]:
    return tuple(names)


@dataclass(frozen=True)
class EventsConfig:
    """Settings for reading a table of events (``[ingest.events]`` in a TOML config).

    Attributes
    ----------
    user, song_id, recording_mbid, spotify_uri, artist, title, album, timestamp, count, ms_played,
    seconds_played, skipped : tuple of str
        Column names each role is read from, matched case-insensitively; the first present wins
        (a TOML string is one name). A column claimed by an earlier role is not taken again.
    timezone : str
        IANA zone of times written without one (``"Europe/Berlin"``); epoch numbers are UTC.
    time_unit : str
        ``"auto"`` (epoch s or ms by magnitude, or ISO 8601), ``"s"``, ``"ms"`` or ``"iso"``.
    header : str
        ``"auto"`` (a first line naming a known column is a header), ``"yes"`` or ``"no"``.
    delimiter : str
        ``"auto"`` (sniffed from the first lines among ``, TAB ; |``) or the character
        (``"\\t"`` or ``"tab"`` for a tab).
    format : str
        ``"auto"`` (by file name, else by content), ``"csv"``, ``"parquet"`` or ``"jsonl"``.
    columns : tuple of str
        Names of a headerless CSV file's columns, in order.
    max_bad_fraction : float
        A file with more of its rows broken (unreadable or wrong, not merely placeholder names or
        zero-length plays) is refused.
    """

    user: tuple[str, ...] = _names("user", "user_id", "userid", "listener", "username", "user_name")
    song_id: tuple[str, ...] = _names("song", "song_id", "songid", "track_id", "trackid", "item_id", "itemid")
    recording_mbid: tuple[str, ...] = _names("recording_mbid", "mbid", "recording_id", "track_mbid")
    spotify_uri: tuple[str, ...] = _names("spotify_uri", "spotify_track_uri", "track_uri", "uri")
    artist: tuple[str, ...] = _names("artist", "artist_name", "artistname")
    title: tuple[str, ...] = _names("title", "track", "track_name", "trackname", "song_name", "songname")
    album: tuple[str, ...] = _names("album", "album_name", "release", "release_name")
    timestamp: tuple[str, ...] = _names("timestamp", "ts", "time", "played_at", "listened_at", "date",
                                        "datetime", "listen_time")
    count: tuple[str, ...] = _names("count", "play_count", "playcount", "plays", "n_plays")
    ms_played: tuple[str, ...] = _names("ms_played", "duration_ms", "msplayed")
    seconds_played: tuple[str, ...] = _names("seconds_played", "duration_s", "secs_played")
    skipped: tuple[str, ...] = _names("skipped", "skip")
    timezone: str = "UTC"
    time_unit: str = "auto"
    header: str = "auto"
    delimiter: str = "auto"
    format: str = "auto"
    columns: tuple[str, ...] = ()
    max_bad_fraction: float = 0.5

    def __post_init__(self) -> None:
        for role in (*ROLES, "columns"):
            value = getattr(self, role)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, role, tuple(str(v) for v in value))
        header = self.header
        if isinstance(header, bool):
            header = "yes" if header else "no"
        object.__setattr__(self, "header", str(header).lower())
        delimiter = {"\\t": "\t", "tab": "\t"}.get(self.delimiter.lower(), self.delimiter)
        object.__setattr__(self, "delimiter", delimiter)
        for name, allowed in (("time_unit", ("auto", "s", "ms", "iso")), ("header", ("auto", "yes", "no")),
                              ("format", ("auto", "csv", "parquet", "jsonl"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"[{SECTION}] {name} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if delimiter != "auto" and len(delimiter) != 1:
            raise ValueError(f"[{SECTION}] delimiter must be one character or \"auto\", got {delimiter!r}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"[{SECTION}] timezone {self.timezone!r} is not an IANA time zone "
                             "(such as \"UTC\" or \"Europe/Berlin\")") from None
        if not 0.0 < self.max_bad_fraction <= 1.0:
            raise ValueError(f"[{SECTION}] max_bad_fraction must be in (0, 1]")


@dataclass
class EventListens(Listens):
    """:class:`Listens` from event tables, with how each file's columns were read.

    ``columns``: file -> {role: the file's column name}; ``ignored_columns``: file -> columns no
    role names (not read); ``nulled``: values not understood and set null, by output column
    (``ms_played``, ``skipped``, ``recording_mbid``, ``spotify_uri``); ``rows_read``: rows seen in
    every file, dropped ones included."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    nulled: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0

    def report(self) -> dict:
        """What was read, as JSON-able data for the ingest report."""
        return {"format": self.format, "files": list(self.files), "rows_read": self.rows_read,
                "rows": self.rows, "columns": self.columns, "ignored_columns": self.ignored_columns,
                "nulled": dict(sorted(self.nulled.items())), "dropped": self.dropped.as_dict()}


# ------------------------------------------------------------------------------ files


def _format_of_name(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for fmt, suffixes in SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    return None


def find_event_files(path: str | os.PathLike) -> list[Path]:
    """The event files ``path`` names: itself when a file, else the files below the folder whose
    names say a format (:data:`SUFFIXES`), sorted (hidden files and folders skipped)."""
    path = Path(path)
    if not path.is_dir():
        return [check_input_file(path, "events")]
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / n for n in filenames
                  if not n.startswith(".") and _format_of_name(Path(n)) is not None]
    if not found:
        kinds = ", ".join(s for ss in SUFFIXES.values() for s in ss)
        raise IngestError(f"no event files in {path} (names ending {kinds}, optionally .gz)")
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())


def _head(path: Path) -> bytes:
    """The first bytes of the (decompressed) file."""
    stream = open_stream(path)
    try:
        return stream.read(_SNIFF_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"{path}: cannot read: {str(exc)[:200]}") from None
    finally:
        stream.close()


def _detect_format(path: Path, head: bytes, cfg: EventsConfig) -> str:
    if cfg.format != "auto":
        return cfg.format
    by_name = _format_of_name(path)
    if by_name:
        return by_name
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    return "csv"


# ------------------------------------------------------------------------------ columns


def _key(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().casefold()


def _map_columns(names: list[str], cfg: EventsConfig) -> tuple[dict[str, str], list[str]]:
    """({role: column name}, [columns no role takes]) for a file's column names."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(_key(name), name)
    taken: dict[str, str] = {}
    used: set[str] = set()
    for role in ROLES:
        for alias in getattr(cfg, role):
            name = by_key.get(_key(alias))
            if name is not None and name not in used:
                taken[role] = name
                used.add(name)
                break
    if "ms_played" in taken and "seconds_played" in taken:
        used.discard(taken.pop("seconds_played"))
    return taken, [n for n in names if n not in used]


def _check_mapping(path: Path, names: list[str], mapping: dict[str, str]) -> None:
    shown = ", ".join(repr(n) for n in names[:20]) or "none"
    if "user" not in mapping:
        raise IngestError(f"{path}: no column names the user (columns: {shown}); name it with "
                          f"user = \"COLUMN\" in [{SECTION}]")
    if not any(r in mapping for r in _ID_ROLES) and not ("artist" in mapping and "title" in mapping):
        raise IngestError(f"{path}: no column names the song (a song id, a recording MBID, a Spotify "
                          f"URI, or artist and title; columns: {shown}); name it with song_id = "
                          f"\"COLUMN\" (or artist and title) in [{SECTION}]")


# ------------------------------------------------------------------------------ readers


@dataclass
class _Raw:
    """A file as read: its mapped columns, how many rows it had, and how to name a row."""

    table: pa.Table                       # the mapped columns, as the file has them
    names: list[str]                      # every column of the file
    rows_read: int                        # table rows plus rows removed while reading
    dropped: Dropped                      # rows removed while reading
    row_of: Callable[[np.ndarray], list[int]]


def _read_csv(path: Path, head: bytes, cfg: EventsConfig) -> _Raw:
    sniff_encoding(path, head)
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(head) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # cut off mid-line
    lines = [ln for ln in lines if ln.strip()][:100]
    if not lines:
        raise IngestError(f"{path}: the file is empty")
    delimiter, quotechar = _sniff_dialect(lines, cfg)
    first = next(csv.reader([lines[0]], delimiter=delimiter, quotechar=quotechar))
    aliases = {_key(a) for role in ROLES for a in getattr(cfg, role)}
    if cfg.header == "auto":
        # a header names a column some role knows, or is the configured column list itself
        keys = [_key(f) for f in first]
        header = any(k in aliases for k in keys) or (bool(cfg.columns) and keys == [_key(c) for c in cfg.columns])
    else:
        header = cfg.header == "yes"
    if header:
        names = [f.strip().lstrip("\ufeff") for f in first]
    elif cfg.columns:
        names = list(cfg.columns)
    else:
        raise IngestError(
            f"{path}: the first line ({quote(lines[0])!r}) names none of the columns PMRS knows; if the "
            f"file has no header, name its columns in order with columns = [\"user\", \"song_id\", ...] "
            f"in [{SECTION}]; if it has one, say which column is which (user = \"COLUMN\", ...)")
    mapping, _ = _map_columns(names, cfg)
    _check_mapping(path, names, mapping)
    wanted = list(mapping.values())
    read_names = names

    def parse(threaded: bool, source=None) -> tuple[pa.Table, list[tuple[int | None, str]]]:
        bad: list[tuple[int | None, str]] = []

        def on_invalid(row) -> str:
            bad.append((row.number, row.text))
            return "skip"

        # the header (when there is one) is skipped: its names are ours, trimmed and sniffed above
        read_opts = pacsv.ReadOptions(use_threads=threaded, block_size=1 << 24, column_names=read_names,
                                      skip_rows=1 if header else 0)
        parse_opts = pacsv.ParseOptions(delimiter=delimiter, quote_char=quotechar or False,
                                        invalid_row_handler=on_invalid)
        conv = pacsv.ConvertOptions(include_columns=wanted, column_types={n: pa.string() for n in wanted},
                                    strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True)
        src = source if source is not None else open_stream(path)
        try:
            return pacsv.read_csv(src, read_options=read_opts, parse_options=parse_opts,
                                  convert_options=conv), bad
        finally:
            if source is None:
                src.close()

    filtered: CleanLines | None = None
    try:
        table, bad = parse(threaded=True)
        if bad:  # only the serial reader numbers the rows it rejects
            table, bad = parse(threaded=False)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {str(exc)[:200]}") from None
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        log.info("%s: pyarrow cannot read the file as it is (%s); reading it again without its lines "
                 "that are too long or not UTF-8", path, str(exc)[:200])
        stream = open_stream(path)
        try:
            filtered = CleanLines(stream)
            table, bad = parse(threaded=False, source=filtered)
        except OSError as exc2:
            raise IngestError(f"{path}: cannot read: {str(exc2)[:200]}") from None
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc2:
            raise IngestError(f"{path}: cannot parse as CSV: {str(exc2)[:200]}") from None
        finally:
            stream.close()

    dropped = Dropped()
    removed: list[int] = []
    if filtered is not None:
        for line, reason, shown in filtered.examples:
            dropped.add(reason, str(path), line, shown)
        for reason, n in filtered.reasons.items():
            extra = n - sum(1 for _, r, _ in filtered.examples if r == reason)
            if extra:
                dropped.add(reason, str(path), None, "", n=extra)
        removed += list(filtered.removed)
    for number, row_text in bad:
        dropped.add(MALFORMED, str(path), number, f"expected {len(read_names)} fields: {quote(row_text)}")
    removed += [n for n, _ in bad if n is not None]
    adj = np.sort(np.array(removed, np.int64))
    adj = adj - np.arange(len(adj))
    first_row = 2 if header else 1

    def row_of(idx: np.ndarray) -> list[int]:
        rows = np.asarray(idx, np.int64) + first_row
        return (rows + np.searchsorted(adj, rows, side="right")).tolist()

    return _Raw(table, names, table.num_rows + len(bad) + (len(filtered.removed) if filtered else 0),
                dropped, row_of)


def _sniff_dialect(lines: list[str], cfg: EventsConfig) -> tuple[str, str]:
    """(delimiter, quote character) of a CSV file from its first lines."""
    sample = "\n".join(lines[:50])
    quotechar = '"'
    if cfg.delimiter != "auto":
        return cfg.delimiter, quotechar
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;|")
        if dialect.quotechar in "\"'":
            quotechar = dialect.quotechar
        return dialect.delimiter, quotechar
    except csv.Error:
        # one column, or a sample the sniffer cannot decide: the candidate in every line
        for d in ("\t", ",", ";", "|"):
            if all(d in ln for ln in lines[:50]):
                return d, quotechar
        return ",", quotechar


def _read_parquet(path: Path, cfg: EventsConfig) -> _Raw:
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        mapping, _ = _map_columns(names, cfg)
        _check_mapping(path, names, mapping)
        table = pf.read(columns=list(mapping.values()))
    except OSError as exc:
        raise IngestError(f"{path}: cannot read as Parquet: {str(exc)[:200]}") from None
    except pa.ArrowException as exc:
        raise IngestError(f"{path}: cannot read as Parquet: {str(exc)[:200]}") from None
    return _Raw(table, names, table.num_rows, Dropped(), lambda idx: (np.asarray(idx) + 1).tolist())


def _flatten(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _read_jsonl(path: Path, cfg: EventsConfig) -> _Raw:
    dropped = Dropped()
    lines: np.ndarray | None = None
    try:
        with open_stream(path) as stream:
            table = pajson.read_json(stream, read_options=pajson.ReadOptions(block_size=1 << 24))
        total = table.num_rows
    except OSError as exc:
        raise IngestError(f"{path}: cannot read: {str(exc)[:200]}") from None
    except pa.ArrowInvalid as exc:
        log.info("%s: pyarrow cannot read it whole (%s); reading it line by line", path, str(exc)[:200])
        table, lines, total = _read_jsonl_lines(path, dropped)
    table = _flatten(table)
    names = table.column_names
    mapping, _ = _map_columns(names, cfg)
    _check_mapping(path, names, mapping)
    table = table.select(list(mapping.values()))
    if lines is None:
        row_of = lambda idx: (np.asarray(idx) + 1).tolist()
    else:
        row_of = lambda idx, lines=lines: lines[np.asarray(idx, np.int64)].tolist()
    return _Raw(table, names, total, dropped, row_of)


def _flat_dict(obj: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flat_dict(v, f"{prefix}{k}."))
        elif v is None or isinstance(v, str):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = json.dumps(v, ensure_ascii=False)
        else:
            out[f"{prefix}{k}"] = json.dumps(v)
    return out


def _read_jsonl_lines(path: Path, dropped: Dropped) -> tuple[pa.Table, np.ndarray, int]:
    """The slow path, for a file pyarrow refuses whole (a line that is not JSON, a value whose
    type changes): blocks of lines through pyarrow, and the lines of a block it refuses one by one
    with :mod:`json` (values as text), broken lines dropped as ``MALFORMED``."""
    tables: list[pa.Table] = []
    line_numbers: list[np.ndarray] = []
    total = 0
    block: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not block:
            return
        data = b"\n".join(b for _, b in block)
        numbers = np.array([n for n, _ in block], np.int64)
        try:
            t = _flatten(pajson.read_json(io.BytesIO(data)))
            if t.num_rows == len(block):
                tables.append(t)
                line_numbers.append(numbers)
                return
        except pa.ArrowInvalid:
            pass
        rows, kept = [], []
        for n, raw in block:
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                dropped.add(MALFORMED, str(path), n, f"{exc}: {quote(raw)}")
                continue
            rows.append(_flat_dict(obj))
            kept.append(n)
        if rows:
            names = list(dict.fromkeys(k for r in rows for k in r))
            tables.append(pa.table({k: pa.array([r.get(k) for r in rows], pa.string()) for k in names}))
            line_numbers.append(np.array(kept, np.int64))

    with open_stream(path) as stream:
        for number, raw in enumerate(io.BufferedReader(stream), 1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            total += 1
            block.append((number, raw))
            if len(block) >= 65536:
                flush()
                block = []
        flush()
    if not tables:
        return pa.table({}), np.zeros(0, np.int64), total
    return _unify(tables), np.concatenate(line_numbers), total


def _unify(tables: list[pa.Table]) -> pa.Table:
    """Tables with the union of their columns; a column whose types differ becomes text."""
    types: dict[str, set] = {}
    for t in tables:
        for f in t.schema:
            types.setdefault(f.name, set()).add(f.type)
    out = []
    for t in tables:
        cols = {}
        for name, ts in types.items():
            ty = next(iter(ts)) if len(ts) == 1 else pa.string()
            if pa.types.is_null(ty) or (len(ts) == 2 and pa.null() in ts):
                ty = next((x for x in ts if not pa.types.is_null(x)), pa.string())
            if name in t.column_names:
                col = t[name]
                if col.type != ty:
                    col = _as_text(col) if ty == pa.string() else col.cast(ty)
            else:
                col = pa.nulls(t.num_rows, ty)
            cols[name] = col
        out.append(pa.table(cols))
    return pa.concat_tables(out)


# ------------------------------------------------------------------------------ values


def _as_text(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A column as ``string`` (dictionaries decoded; numbers and booleans written out)."""
    ty = col.type
    if pa.types.is_dictionary(ty):
        col = col.cast(ty.value_type)
        ty = col.type
    if pa.types.is_string(ty):
        return col
    if pa.types.is_boolean(ty):
        return pc.if_else(col, "true", "false")
    return col.cast(pa.string())


def _text(col) -> pa.ChunkedArray:
    """Text trimmed of surrounding whitespace; empty is null."""
    col = _as_text(col)
    trimmed = pc.utf8_trim_whitespace(col)
    if pc.sum(pc.binary_length(trimmed)).as_py() != pc.sum(pc.binary_length(col)).as_py():
        col = trimmed
    del trimmed
    empty = pc.equal(pc.binary_length(col), 0)
    if pc.any(empty).as_py():
        col = pc.if_else(empty, pa.scalar(None, pa.string()), col)
    return col


def _mask(arr) -> np.ndarray:
    """A boolean column as numpy, null as False."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False) if len(arr) else np.zeros(0, bool)


def _cast_or_null(arr: pa.Array, ty: pa.DataType) -> pa.Array:
    """``arr`` cast to ``ty``, values that do not cast as null (the cast is tried on halves of a
    part that fails, so a few bad values cost a few passes)."""
    try:
        return pc.cast(arr, ty)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(arr) <= 1:
            return pa.nulls(len(arr), ty)
        mid = len(arr) // 2
        return pa.concat_arrays([_cast_or_null(arr.slice(0, mid), ty), _cast_or_null(arr.slice(mid), ty)])


def _cast_chunked(col: pa.ChunkedArray, ty: pa.DataType) -> pa.ChunkedArray:
    try:
        return pc.cast(col, ty)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([_cast_or_null(c, ty) for c in col.chunks], ty)


def _numbers(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text to numbers (int64 when every value is at most 18 digits, else float64); what is not a
    number is null."""
    if _all_digits(text) and (pc.max(pc.binary_length(text)).as_py() or 0) <= 18:
        return pc.cast(text, pa.int64())
    is_num = pc.match_substring_regex(text, _NUMBER_RE)
    return _cast_chunked(pc.if_else(is_num, text, pa.scalar(None, pa.string())), pa.float64())


_TS_S = pa.timestamp("s", tz="UTC")


def _epoch(values: pa.ChunkedArray, unit: str) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Epoch numbers (int64 or float64) to UTC seconds; and where the number is too large to be a
    time (set null)."""
    n = len(values)
    if pa.types.is_integer(values.type):
        if unit == "ms":
            secs = pc.divide(values, 1000)
        elif unit == "auto" and (pc.max(values).as_py() or 0) >= MS_FROM:
            secs = pc.if_else(pc.greater_equal(values, MS_FROM), pc.divide(values, 1000), values)
        else:
            secs = values
        lo, hi = pc.min(secs).as_py(), pc.max(secs).as_py()
        if lo is None or (lo >= -10**13 and hi <= 10**13):
            return pc.cast(secs, _TS_S), np.zeros(n, bool)
        values = secs.cast(pa.float64())
        unit = "s"
    secs = values
    if unit == "ms":
        secs = pc.divide(values, 1000.0)
    elif unit == "auto":
        secs = pc.if_else(pc.greater_equal(pc.abs(values), float(MS_FROM)), pc.divide(values, 1000.0), values)
    huge = pc.greater(pc.abs(secs), 1e13)
    out_of_range = _mask(huge)
    if out_of_range.any():
        secs = pc.if_else(huge, pa.scalar(None, pa.float64()), secs)
    return pc.cast(pc.cast(pc.floor(secs), pa.int64()), _TS_S), out_of_range


def _iso_fast(text: pa.ChunkedArray, tz: str) -> pa.ChunkedArray | None:
    """ISO 8601 text to UTC seconds when every value is of one kind (all with a zone, or all
    without) and casts; ``None`` otherwise."""
    for zoned in (True, False):
        try:
            return _iso_kind(text, zoned, tz, lenient=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return None


def _iso(text: pa.ChunkedArray, tz: str) -> pa.ChunkedArray:
    """ISO 8601 text to UTC seconds, value by value; text that is not such a time is null."""
    none = pa.scalar(None, pa.string())
    text = pc.replace_substring_regex(text, r"\s*(?:UTC|GMT)$", "Z")
    text = pc.replace_substring_regex(text, r"(\d),(\d)", r"\1.\2")
    text = pc.if_else(pc.match_substring_regex(text, _ISO_RE), text, none)
    zoned = pc.match_substring_regex(text, r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*" + _ZONED_RE)
    with_zone = _iso_kind(pc.if_else(zoned, text, none), True, tz, lenient=True)
    without = _iso_kind(pc.if_else(zoned, none, text), False, tz, lenient=True)
    return pc.coalesce(with_zone, without)


def _iso_kind(text: pa.ChunkedArray, zoned: bool, tz: str, lenient: bool) -> pa.ChunkedArray:
    cast = _cast_chunked if lenient else pc.cast
    if zoned:
        ts = cast(text, pa.timestamp("ns", tz="UTC"))
    else:
        ts = cast(text, pa.timestamp("ns"))
        ts = pc.assume_timezone(ts, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(ts, _TS_S, safe=False)


def _times(col, cfg: EventsConfig) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    """(UTC seconds, given but not understood, a number too large to be a time)."""
    n = len(col)
    ty = col.type
    nothing = np.zeros(n, bool)
    if pa.types.is_timestamp(ty) or pa.types.is_date(ty):
        if pa.types.is_date(ty):
            col = col.cast(pa.timestamp("s"))
        if col.type.tz is None:
            col = pc.assume_timezone(col, timezone=cfg.timezone, ambiguous="earliest", nonexistent="earliest")
        return pc.cast(col, _TS_S, safe=False), nothing, nothing
    if _is_num(ty):
        if cfg.time_unit == "iso":
            return pa.nulls(n, _TS_S), _mask(pc.is_valid(col)), nothing
        ts, huge = _epoch(col if pa.types.is_integer(ty) else col.cast(pa.float64()), cfg.time_unit)
        return ts, nothing, huge
    text = _text(col)
    given = _mask(pc.is_valid(text))
    if cfg.time_unit in ("s", "ms") or (cfg.time_unit == "auto" and _all_digits(text)):
        values = _numbers(text)
        ts, huge = _epoch(values, cfg.time_unit)
        return ts, given & ~_mask(pc.is_valid(values)), huge
    fast = _iso_fast(text, cfg.timezone)
    if fast is not None:
        return fast, nothing, nothing
    if cfg.time_unit == "auto":  # numbers and ISO times mixed, or some of neither
        values = _numbers(text)
        ts, huge = _epoch(values, "auto")
        rest = pc.if_else(pc.is_valid(values), pa.scalar(None, pa.string()), text)
        ts = pc.coalesce(ts, _iso(rest, cfg.timezone))
    else:
        ts, huge = _iso(text, cfg.timezone), nothing
    return ts, given & ~_mask(pc.is_valid(ts)) & ~huge, huge


def _all_digits(text: pa.ChunkedArray) -> bool:
    """Every value ASCII digits (nulls aside)."""
    return pc.all(pc.ascii_is_decimal(text)).as_py() is not False


def _counts(col, n: int) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
    """(play counts, where a count is given and is not a positive whole number); a row without a
    count (no column, or an empty value) stands for one listen."""
    if col is None:
        return pa.array(np.ones(n, np.int64)), np.zeros(n, bool)
    given = _given(col)
    ty = given.type
    if pa.types.is_integer(ty):
        values = given.cast(pa.int64())
    elif _is_num(ty):
        f = given.cast(pa.float64())
        whole = pc.and_(pc.equal(pc.floor(f), f), pc.less(pc.abs(f), 9.2e18))
        values = pc.cast(pc.if_else(whole, f, pa.scalar(None, pa.float64())), pa.int64())
    elif _all_digits(given) and (pc.max(pc.binary_length(given)).as_py() or 0) <= 18:
        values = pc.cast(given, pa.int64())
    else:
        whole = pc.match_substring_regex(given, _WHOLE_RE)
        digits = pc.replace_substring_regex(pc.if_else(whole, given, pa.scalar(None, pa.string())),
                                            r"\.0*$", "")
        values = pc.cast(digits, pa.int64())
    bad = _mask(pc.is_valid(given)) & ~_mask(pc.greater(values, 0))
    return pc.fill_null(values, 1), bad


def _nulled(out: pa.ChunkedArray | pa.Array, src) -> int:
    """Values ``src`` had that ``out`` lost."""
    return int(pc.sum(pc.and_(pc.is_valid(src), pc.is_null(out))).as_py() or 0) if src is not None else 0


def _millis(col, scale: int) -> tuple[pa.ChunkedArray, int]:
    """(milliseconds as int64, values given that are not a non-negative number: set null)."""
    given = _given(col)
    if pa.types.is_integer(given.type):
        values = given.cast(pa.int64())
    else:
        values = given.cast(pa.float64()) if _is_num(given.type) else _numbers(given)
    if pa.types.is_integer(values.type):
        ms = pc.multiply(values, scale) if scale != 1 else values
        lo = pc.min(ms).as_py()
        if lo is None or lo >= 0:
            return ms, int(pc.sum(pc.is_null(ms)).as_py() or 0) - int(pc.sum(pc.is_null(given)).as_py() or 0)
        values = values.cast(pa.float64())
    values = pc.multiply(values, float(scale))
    ok = pc.and_(pc.greater_equal(values, 0.0), pc.less(values, 9.2e15))
    ms = pc.cast(pc.round(pc.if_else(ok, values, pa.scalar(None, pa.float64()))), pa.int64())
    return ms, _nulled(ms, given)


def _bools(col) -> pa.ChunkedArray:
    ty = col.type
    if pa.types.is_boolean(ty):
        return col
    if _is_num(ty):
        return pc.if_else(pc.is_in(col.cast(pa.float64()), pa.array([0.0, 1.0])),
                          pc.not_equal(col.cast(pa.float64()), 0.0), pa.scalar(None, pa.bool_()))
    low = pc.utf8_lower(_text(col))
    true = pc.is_in(low, pa.array(_TRUE))
    false = pc.is_in(low, pa.array(_FALSE))
    return pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))


def _extract(col, pattern: str, lower: bool, prefix: str = "") -> pa.ChunkedArray:
    text = _text(col)
    if lower:
        text = pc.utf8_lower(text)
    ok = pc.match_substring_regex(text, pattern)
    text = pc.if_else(ok, text, pa.scalar(None, pa.string()))
    found = pc.struct_field(pc.extract_regex(text, pattern), [0])
    return pc.binary_join_element_wise(prefix, found, "") if prefix else found


def _id_problems(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(too long, holds a NUL) for an id column (null ids have neither)."""
    n = len(col)
    lengths = pc.binary_length(col)
    too_long = _mask(pc.greater(lengths, MAX_ID_BYTES)) if (pc.max(lengths).as_py() or 0) > MAX_ID_BYTES \
        else np.zeros(n, bool)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    # a NUL is rare: look for the byte in the character data first (bytes past a slice at most
    # give a false alarm), and for the rows only when there is one
    if any(c.buffers()[2] is not None and not np.frombuffer(c.buffers()[2], np.uint8).all()
           for c in chunks if len(c)):
        return too_long, _mask(pc.match_substring(col, "\x00"))
    return too_long, np.zeros(n, bool)


def _placeholders(col: pa.ChunkedArray, where: np.ndarray) -> np.ndarray:
    """Rows (among ``where``) whose value is a placeholder name; each distinct value is judged once."""
    if not where.any():
        return np.zeros(len(col), bool)
    distinct = pc.unique(pc.filter(col, pa.array(where))).to_pylist()
    names = [v for v in distinct if v is not None and is_placeholder(v)]
    if not names:
        return np.zeros(len(col), bool)
    return _mask(pc.is_in(col, pa.array(names, pa.string()))) & where


# ------------------------------------------------------------------------------ the stage


def read_event_file(path: str | os.PathLike, cfg: EventsConfig | None = None,
                    now_s: float | None = None) -> EventListens:
    """Read one event file (see the module's description) into :class:`EventListens`.

    Parameters
    ----------
    path : str or path-like
        A CSV/TSV (any delimiter, header or not, optionally compressed), Parquet or JSON Lines
        file.
    cfg : EventsConfig
    now_s : float or None
        "Now" for :func:`sane_times`, UTC seconds (default: the clock).

    Raises
    ------
    IngestError
        The file cannot be read, has no user column or nothing naming a song, or more than
        ``cfg.max_bad_fraction`` of its rows are broken.
    """
    cfg = cfg or EventsConfig()
    path = check_input_file(path, "events")
    now_s = time.time() if now_s is None else now_s
    t0 = time.perf_counter()
    head = _head(path)
    fmt = _detect_format(path, head, cfg)
    if fmt == "csv":
        raw = _read_csv(path, head, cfg)
    elif fmt == "parquet":
        raw = _read_parquet(path, cfg)
    else:
        raw = _read_jsonl(path, cfg)
    t_read = time.perf_counter() - t0
    mapping, ignored = _map_columns(raw.names, cfg)
    listens = _convert(path, raw, mapping, cfg, now_s)
    listens.format = fmt
    listens.ignored_columns = {str(path): ignored} if ignored else {}
    log.info("%s: %d of %d rows read as listens (%s; read %.1fs, checked %.1fs)%s", path, listens.rows,
             listens.rows_read, fmt, t_read, time.perf_counter() - t0 - t_read,
             f"; columns not read: {', '.join(ignored)}" if ignored else "")
    return listens


def _convert(path: Path, raw: _Raw, mapping: dict[str, str], cfg: EventsConfig, now_s: float) -> EventListens:
    table = raw.table
    n = table.num_rows
    col = {role: table[name] for role, name in mapping.items()}
    none = pa.nulls(n, pa.string())
    nulled: dict[str, int] = {}

    user = _text(col["user"])
    song = _text(col["song_id"]) if "song_id" in col else none
    artist = _text(col["artist"]) if "artist" in col else none
    title = _text(col["title"]) if "title" in col else none
    album = _text(col["album"]) if "album" in col else none
    mbid = _extract(col["recording_mbid"], _MBID_RE, lower=True) if "recording_mbid" in col else none
    uri = (_extract(col["spotify_uri"], _SPOTIFY_RE, lower=False, prefix="spotify:track:")
           if "spotify_uri" in col else none)
    for name, out in (("recording_mbid", mbid), ("spotify_uri", uri)):
        if name in col:
            nulled[name] = _nulled(out, _given(col[name]))
    if "timestamp" in col:
        ts, unreadable, huge = _times(col["timestamp"], cfg)
        insane = ~_mask(sane_times(ts, now_s)) | huge
    else:
        ts, unreadable, insane = pa.nulls(n, _TS_S), np.zeros(n, bool), np.zeros(n, bool)
    counts, bad_count = _counts(col.get("count"), n)
    played = "ms_played" if "ms_played" in col else "seconds_played" if "seconds_played" in col else None
    if played:
        ms, nulled["ms_played"] = _millis(col[played], 1 if played == "ms_played" else 1000)
    else:
        ms = pa.nulls(n, pa.int64())
    if "skipped" in col:
        skipped = _bools(col["skipped"])
        nulled["skipped"] = _nulled(skipped, _given(col["skipped"]))
    else:
        skipped = pa.nulls(n, pa.bool_())

    # Each row's reason, the first that applies (0: kept).
    reasons = [NO_USER, ID_TOO_LONG, NUL_IN_ID, BAD_COUNT, UNREADABLE_TIME, BAD_TIME, NO_SONG,
               PLACEHOLDER, ZERO_LENGTH]
    code = np.zeros(n, np.int8)

    def mark(reason: str, where: np.ndarray) -> None:
        code[(code == 0) & where] = reasons.index(reason) + 1

    mark(NO_USER, ~_mask(pc.is_valid(user)))
    u_long, u_nul = _id_problems(user)
    s_long, s_nul = _id_problems(song)
    mark(ID_TOO_LONG, u_long | s_long)
    mark(NUL_IN_ID, u_nul | s_nul)
    mark(BAD_COUNT, bad_count)
    mark(UNREADABLE_TIME, unreadable)
    mark(BAD_TIME, insane)
    has_id = _mask(pc.is_valid(song)) | _mask(pc.is_valid(mbid)) | _mask(pc.is_valid(uri))
    has_names = _mask(pc.is_valid(artist)) & _mask(pc.is_valid(title))
    mark(NO_SONG, ~has_id & ~has_names)
    named_only = ~has_id & has_names & (code == 0)
    mark(PLACEHOLDER, _placeholders(artist, named_only) | _placeholders(title, named_only))
    mark(ZERO_LENGTH, _mask(pc.equal(ms, 0)))

    dropped = raw.dropped
    bad_rows = int(np.count_nonzero(code))
    if bad_rows:
        values = table
        for i, reason in enumerate(reasons, 1):
            idx = np.flatnonzero(code == i)
            if not len(idx):
                continue
            shown = idx[:10]
            rows = raw.row_of(shown)
            for row, rec in zip(rows, values.take(pa.array(shown)).to_pylist()):
                detail = ", ".join(f"{k}={v!r}" for k, v in rec.items())
                dropped.add(reason, str(path), int(row), detail)
            if len(idx) > len(shown):
                dropped.add(reason, str(path), None, "", n=len(idx) - len(shown))
    garbage = sum(n_ for r, n_ in dropped.counts.items() if r in _GARBAGE)
    if raw.rows_read and garbage > cfg.max_bad_fraction * raw.rows_read:
        summary = ", ".join(f"{k} {r}" for r, k in sorted(dropped.counts.items(), key=lambda kv: -kv[1]))
        first = next((ex[0] for r, ex in dropped.examples.items() if r in _GARBAGE and ex), None)
        where = f"; row {first[1]}: {first[2][:120]}" if first else ""
        raise IngestError(f"{path}: mostly not usable as listening events: {garbage} of {raw.rows_read} "
                          f"rows are broken ({summary}){where}")

    out = pa.Table.from_arrays([user, song, mbid, uri, artist, title, album, ts, counts, ms, skipped],
                               schema=LISTEN_SCHEMA.set(0, pa.field("user", pa.string())))
    if bad_rows:
        out = out.filter(pa.array(code == 0))
    out = out.cast(LISTEN_SCHEMA)
    return EventListens(out, "", [str(path)], dropped, columns={str(path): mapping},
                        nulled={k: v for k, v in nulled.items() if v}, rows_read=raw.rows_read)


def _given(col):
    """A column with its empty text as null (what counts as a value given)."""
    return col if _is_num(col.type) or pa.types.is_boolean(col.type) else _text(col)


def _is_num(ty: pa.DataType) -> bool:
    return pa.types.is_integer(ty) or pa.types.is_floating(ty) or pa.types.is_decimal(ty)


def read_events(path: str | os.PathLike, cfg: EventsConfig | None = None,
                now_s: float | None = None) -> EventListens:
    """Read an event file, or every event file in a folder (:func:`find_event_files`), into one
    :class:`EventListens` (tables concatenated in file order, dropped rows added up).

    ``format`` is the files' format, or ``"mixed"``. Raises :class:`IngestError` as
    :func:`read_event_file` does, for the first file that fails.
    """
    cfg = cfg or EventsConfig()
    parts = [read_event_file(p, cfg, now_s) for p in find_event_files(path)]
    if len(parts) == 1:
        return parts[0]
    dropped = Dropped()
    nulled: dict[str, int] = {}
    for p in parts:
        dropped.merge(p.dropped)
        for k, v in p.nulled.items():
            nulled[k] = nulled.get(k, 0) + v
    formats = {p.format for p in parts}
    return EventListens(pa.concat_tables([p.table for p in parts]),
                        formats.pop() if len(formats) == 1 else "mixed",
                        [f for p in parts for f in p.files], dropped,
                        columns={k: v for p in parts for k, v in p.columns.items()},
                        ignored_columns={k: v for p in parts for k, v in p.ignored_columns.items()},
                        nulled=nulled, rows_read=sum(p.rows_read for p in parts))

