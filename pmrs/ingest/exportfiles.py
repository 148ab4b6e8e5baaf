"""What every reader of a personal listening export shares: where a file's bytes come from, its
text, its JSON, and the rules a row is kept or dropped by.

- Files: a person's folder is walked recursively (names starting with ``.`` and ``__MACOSX``
  skipped); a ``.zip`` in it is opened and its members are files too (exports arrive zipped).
  A member is named ``archive.zip!inner/path`` in reports.
- Text: UTF-8, with or without a byte-order mark; UTF-16 with its byte-order mark; a file that is
  not valid UTF-8 is read as Windows-1252 (bytes it leaves undefined as Latin-1) and counted under
  :data:`READ_AS_CP1252` (one per file: a warning, its rows are still read).
- JSON that does not parse is a :data:`~pmrs.ingest.listens.BROKEN_FILE` (the file named, the
  other files still read).
- Rows (:class:`ListenRows`): a row with no Spotify URI or MusicBrainz id must have an artist and
  a title (:data:`~pmrs.ingest.listens.NO_SONG`) that are not placeholders
  (:data:`~pmrs.ingest.listens.PLACEHOLDER`); a play of 0 ms is
  :data:`~pmrs.ingest.listens.ZERO_LENGTH`; a time outside
  :func:`~pmrs.ingest.listens.sane_times` is :data:`~pmrs.ingest.listens.BAD_TIME`; a file more
  than half of whose rows are :data:`~pmrs.ingest.listens.MALFORMED` raises
  :class:`pmrs.IngestError` naming it.

Nothing a reader was not asked for is kept: readers pick their fields by name, and a dropped row's
example quotes the offending value, never the row (exports carry IP addresses and user agents).
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Hashable

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import IngestError
from .listens import (BAD_TIME, BROKEN_FILE, DUPLICATE, LISTEN_SCHEMA, MALFORMED, NO_SONG, PLACEHOLDER, ZERO_LENGTH,
                      Dropped, Listens, is_placeholder, sane_times)

log = logging.getLogger(__name__)

__all__ = ["BadRow", "ExportFile", "ListenRows", "NOW_PLAYING", "READ_AS_CP1252", "broken", "export_files", "head_text",
           "int_field", "load_json", "norm_mbid", "norm_spotify_uri", "parse_iso_utc", "read_text", "text_field"]

#: A file that is not UTF-8, read as Windows-1252: counted once per file (a warning: its rows are read).
READ_AS_CP1252 = "not UTF-8, read as Windows-1252"
#: A "now playing" entry (Last.fm's ``@attr.nowplaying``, ListenBrainz's ``playing_now``): no time yet.
NOW_PLAYING = "now playing (not yet a listen: no time)"

#: Times further from 1970 than this (about 31,700 years, in seconds) are not times at all.
_MAX_ABS_TS = 10**12

#: Bytes of a file read to recognise it.
HEAD_BYTES = 64 * 1024

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TRACK_URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}")
_TRACK_URL = re.compile(r"(?:https?://)?open\.spotify\.com/(?:[\w-]+/)?track/([0-9A-Za-z]{22})")


def _latin1_fallback(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Windows-1252 leaves 5 bytes undefined; they are read as Latin-1 (the same code point)."""
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


codecs.register_error("pmrs-latin1-fallback", _latin1_fallback)


@dataclass(frozen=True)
class ExportFile:
    """One file of an export: ``path`` on disk, or ``member`` of the zip at ``path``."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """How reports name it: the path, or ``archive.zip!member``."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def basename(self) -> str:
        return PurePosixPath(self.member).name if self.member else self.path.name

    @property
    def parts(self) -> tuple[str, ...]:
        """Folder names above it and its name (inside the zip for a member)."""
        return PurePosixPath(self.member).parts if self.member else self.path.parts

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as zf:
            return zf.read(self.member)

    def head(self, n: int = HEAD_BYTES) -> bytes:
        if self.member is None:
            with open(self.path, "rb") as fh:
                return fh.read(n)
        with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
            return fh.read(n)

    def __str__(self) -> str:
        return self.name


def _natural(name: str) -> list:
    """Sort key putting ``9.jsonl`` before ``10.jsonl`` (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def export_files(path: str | Path, dropped: Dropped | None = None) -> list[ExportFile]:
    """The files of an export at ``path`` (a folder, walked recursively; a zip; or one file), zip
    members included, in name order. A zip that cannot be opened is a
    :data:`~pmrs.ingest.listens.BROKEN_FILE` in ``dropped`` (logged when none is given).
    Numbers in names sort as numbers (``9.jsonl`` before ``10.jsonl``)."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"export not found: {path}")
    found = [path] if path.is_file() else sorted(
        (p for p in path.rglob("*") if p.is_file() and not any(_skipped(part) for part in p.relative_to(path).parts)),
        key=lambda p: _natural(str(p)))
    files: list[ExportFile] = []
    for p in found:
        if p.suffix.lower() != ".zip":
            files.append(ExportFile(p))
            continue
        try:
            with zipfile.ZipFile(p) as zf:
                members = sorted((i.filename for i in zf.infolist() if not i.is_dir()), key=_natural)
        except (zipfile.BadZipFile, OSError) as exc:
            _broken(dropped, str(p), f"not a readable zip: {exc}")
            continue
        files.extend(ExportFile(p, m) for m in members
                     if not any(_skipped(part) for part in PurePosixPath(m).parts))
    return files


def _broken(dropped: Dropped | None, name: str, detail: str) -> None:
    log.warning("%s: %s", name, detail)
    if dropped is not None:
        dropped.add(BROKEN_FILE, name, None, detail)


def _decode(data: bytes) -> tuple[str, int | None]:
    """The text and, when it was not UTF-8, the offset of the first byte that was not."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("cp1252", "pmrs-latin1-fallback"), exc.start


def head_text(f: ExportFile) -> str:
    """The start of a file as text (to recognise it: bad bytes replaced, nothing counted)."""
    try:
        data = f.head()
    except (OSError, zipfile.BadZipFile, KeyError):
        return ""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    return data.decode("utf-8-sig", "replace")


def read_text(f: ExportFile, dropped: Dropped) -> str | None:
    """The whole file as text (:data:`READ_AS_CP1252` counted when it is not UTF-8); ``None``
    (counted as a broken file) when it cannot be read."""
    try:
        data = f.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        _broken(dropped, f.name, f"cannot read: {exc}")
        return None
    text, bad_at = _decode(data)
    if bad_at is not None:
        log.warning("%s is not UTF-8 (byte %d); read as Windows-1252", f.name, bad_at)
        dropped.add(READ_AS_CP1252, f.name, None, f"first byte that is not UTF-8 at offset {bad_at}")
    return text


def load_json(f: ExportFile, text: str, dropped: Dropped) -> Any:
    """``text`` parsed, or ``None`` with the file counted as broken (the parser's message, never
    the content)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        _broken(dropped, f.name, f"JSON that does not parse: {getattr(exc, 'msg', exc)}{where}")
        return None


def broken(dropped: Dropped, f: ExportFile, detail: str) -> None:
    """Count ``f`` as a file that does not parse as its format (``detail`` says why)."""
    _broken(dropped, f.name, detail)


def parse_iso_utc(value: Any) -> int | None:
    """Seconds since the epoch for an ISO 8601 time (``2019-01-01 12:34``, ``...T12:34:56Z``,
    with an offset); a time without an offset is UTC. ``None`` when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def norm_mbid(value: Any) -> str | None:
    """A MusicBrainz id as lower-case UUID text, or ``None`` (empty, or not a UUID)."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value if _UUID.fullmatch(value) else None


def norm_spotify_uri(value: Any) -> str | None:
    """``spotify:track:<22 chars>`` from a track URI or an ``open.spotify.com`` track URL;
    ``None`` for anything else (a local file's ``spotify:local:...``, an episode)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _TRACK_URI.fullmatch(value):
        return value
    m = _TRACK_URL.match(value)
    return f"spotify:track:{m.group(1)}" if m else None


def text_field(value: Any, what: str) -> str | None:
    """A name field: trimmed text, ``None`` when absent or empty; :class:`BadRow` when it is not
    text."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # a title such as 1999 written as a number
    if not isinstance(value, str):
        raise BadRow(f"{what} is not text ({type(value).__name__})")
    value = value.strip()
    return value or None


def int_field(value: Any, what: str) -> int | None:
    """A count of milliseconds or seconds: a whole number (or its text); :class:`BadRow` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRow(f"{what} is not a number ({value!r})")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise BadRow(f"{what} is not a whole number ({str(value)[:40]!r})")


class BadRow(ValueError):
    """A row that is :data:`~pmrs.ingest.listens.MALFORMED`; the message says which field."""


class ListenRows:
    """Listens read from a person's export files, kept or dropped by the rules every export reader
    shares (this module's docstring); :meth:`listens` gives the table.

    Call :meth:`begin` per file, then :meth:`add` or :meth:`drop` per row, then :meth:`end`
    (which raises :class:`pmrs.IngestError` when most of the file was malformed).
    """

    _COLUMNS = ("song_id", "recording_mbid", "spotify_uri", "artist", "title", "album", "ts", "ms_played",
                "skipped")

    def __init__(self, user: str, dropped: Dropped | None = None) -> None:
        self.user = user
        self.dropped = dropped if dropped is not None else Dropped()
        self._cols: dict[str, list] = {c: [] for c in self._COLUMNS}
        self._where: list[tuple[str, int | None]] = []
        self._seen: set[Hashable] = set()
        self._file = self._first_bad = ""
        self._rows = self._bad = 0

    def begin(self, file: str) -> None:
        self._file, self._rows, self._bad, self._first_bad = file, 0, 0, ""

    def drop(self, reason: str, row: int | None, detail: str = "") -> None:
        self._rows += 1
        if reason == MALFORMED:
            self._bad += 1
            self._first_bad = self._first_bad or f"row {row}: {detail}"
        self.dropped.add(reason, self._file, row, detail)

    def add(self, row: int | None, *, ts: int, artist: str | None, title: str | None, album: str | None = None,
            recording_mbid: str | None = None, spotify_uri: str | None = None, song_id: str | None = None,
            ms_played: int | None = None, skipped: bool | None = None, key: Hashable | None = None) -> bool:
        """Keep a listen unless it names no song, names a placeholder, played 0 ms, or repeats
        ``key`` (a duplicate); ``ts`` in UTC seconds. Returns whether it was kept."""
        if abs(ts) > _MAX_ABS_TS:
            self.drop(BAD_TIME, row, f"{ts} s")
            return False
        if not (recording_mbid or spotify_uri or song_id):
            if not artist or not title:
                self.drop(NO_SONG, row, "no artist" if not artist else "no title")
                return False
            if is_placeholder(artist) or is_placeholder(title):
                self.drop(PLACEHOLDER, row, f"{artist} - {title}")
                return False
        if ms_played is not None and ms_played <= 0:
            self.drop(ZERO_LENGTH, row, f"ms_played {ms_played}")
            return False
        if key is not None:
            if key in self._seen:
                self.drop(DUPLICATE, row, f"{artist} - {title} at {_iso(ts)}")
                return False
            self._seen.add(key)
        self._rows += 1
        for name, value in (("song_id", song_id), ("recording_mbid", recording_mbid), ("spotify_uri", spotify_uri),
                            ("artist", artist), ("title", title), ("album", album), ("ts", ts),
                            ("ms_played", ms_played), ("skipped", skipped)):
            self._cols[name].append(value)
        self._where.append((self._file, row))
        return True

    def end(self) -> None:
        """Raise :class:`pmrs.IngestError` when more than half the file's rows were malformed."""
        if self._bad * 2 > self._rows:
            raise IngestError(f"{self._file}: {self._bad} of {self._rows} rows are malformed "
                              f"(first: {self._first_bad}); is it the export it looks like? Remove or fix it")

    def listens(self, fmt: str, files: list[str], now_s: float | None = None) -> Listens:
        """The kept rows as :data:`~pmrs.ingest.listens.LISTEN_SCHEMA`; times outside
        :func:`~pmrs.ingest.listens.sane_times` (now: ``now_s``, default the clock) dropped."""
        n = len(self._where)
        ts = pa.array(self._cols["ts"], pa.int64()).cast(pa.timestamp("s", tz="UTC"))
        table = pa.table({
            "user": pa.array([self.user] * n, pa.string()),
            **{c: pa.array(self._cols[c], LISTEN_SCHEMA.field(c).type)
               for c in ("song_id", "recording_mbid", "spotify_uri", "artist", "title", "album")},
            "ts": ts,
            "count": pa.array([1] * n, pa.int64()),
            "ms_played": pa.array(self._cols["ms_played"], pa.int64()),
            "skipped": pa.array(self._cols["skipped"], pa.bool_()),
        }, schema=LISTEN_SCHEMA)
        ok = sane_times(table["ts"], time.time() if now_s is None else now_s)
        if not pc.all(ok).as_py():
            for i in pc.indices_nonzero(pc.invert(ok)).to_pylist():
                file, row = self._where[i]
                self.dropped.add(BAD_TIME, file, row, _iso(self._cols["ts"][i]))
            table = table.filter(ok)
        return Listens(table, fmt, files, self.dropped)


def _iso(ts: int | None) -> str:
    if ts is None:
        return "no time"
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ts} s"
