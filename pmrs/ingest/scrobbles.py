"""Last.fm scrobble exports into listening events: the CSV files export tools write, and the API's
``user.getRecentTracks`` pages saved as JSON.

CSV (:data:`CSV`), as the common tools write it, newest scrobble first:

- lastfm-to-csv (benjaminbenben): no header, ``artist,album,track,date``, the date like
  ``31 Jan 2021 12:34``;
- Last.fm data exporters: a header ``uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid``;
- other tools: a header in another order (``Artist,Album,Track,Date``, ...), separated by ``,``,
  ``;``, a tab or ``|``.

A first row that, split at one of those separators, names an artist, a track and a time column
(:data:`HEADER_NAMES`, compared without case, spaces or ``_``) is a header, and says the layout.
Without one, the separator is the one that splits the first lines into the same number (3 or
more) of columns, and the layout comes from the content: the column
whose values parse as times (80 % or more of the first rows) is the date (epoch seconds preferred
over text when both are there); of the other columns, those holding MusicBrainz ids are set
aside, and the remaining 3 are artist, album, track (2: artist, track) in that order, as
lastfm-to-csv writes them; an id column right after the track is the track's MBID. A first row
whose date does not parse while the others' do is an unknown header and skipped.

Times (:func:`parse_time`) are UTC: epoch seconds (milliseconds when 13 digits),
``31 Jan 2021 12:34``, ``31 Jan 2021, 12:34``, ``31 January 2021 12:34``, ISO 8601
(``2021-01-31 12:34:56``, ``2021-01-31T12:34:56Z``, an offset), ``2021/01/31 12:34``,
``31.01.2021 12:34``. Day-first and month-first slashed dates (``01/02/2021``) are ambiguous and
not read. A scrobble's time is when it was scrobbled, which Last.fm's clients do at the START of
the listen (the time the track began playing): ``ts`` is the START.

JSON (:data:`PAGES`): one saved page ``{"recenttracks": {"track": [...], "@attr": {...}}}`` or a
JSON array of such pages; each track ``{"artist": {"#text", "mbid"} (or {"name", ...}), "name",
"mbid", "album": {"#text"}, "date": {"uts", "#text"}}``. The now-playing entry
(``"@attr": {"nowplaying": "true"}``) has no date and is dropped as
:data:`~pmrs.ingest.exportfiles.NOW_PLAYING`. ``mbid`` (the track's) is the recording MBID.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ..ids import check_id
from .exportfiles import (BadRow, ExportFile, ListenRows, NOW_PLAYING, broken, export_files, head_text, load_json,
                          norm_mbid, parse_iso_utc, read_text, text_field)
from .listens import MALFORMED, Dropped, Listens

__all__ = ["CSV", "CsvLayout", "FORMATS", "HEADER_NAMES", "PAGES", "csv_layout", "parse_time", "read_scrobble_files",
           "read_scrobbles", "sniff_content", "sniff_name"]

CSV = "lastfm-csv"
PAGES = "lastfm-json"
FORMATS = (CSV, PAGES)

#: Header names of each column role (after :func:`_norm_header`); the first column of a role wins.
HEADER_NAMES = {
    "artist": ("artist", "artistname", "artist_name", "artist#text", "creator", "performer"),
    "album": ("album", "albumname", "album_name", "album#text", "release", "releasename", "release_name"),
    "title": ("track", "trackname", "track_name", "title", "name", "song", "songname", "song_name", "track_title"),
    "mbid": ("track_mbid", "trackmbid", "recording_mbid", "mbid"),
    "epoch": ("uts", "timestamp", "unix_timestamp", "date_uts", "date#uts", "epoch", "unixtime"),
    "time": ("utc_time", "date", "time", "datetime", "date_time", "played_at", "playedat", "scrobbled_at",
             "listened_at", "date#text", "utc", "played"),
}
_ROLE_OF = {name: role for role, names in HEADER_NAMES.items() for name in names}

_DELIMITERS = (",", ";", "\t", "|")
#: Share of the first rows whose date must parse for a header-less column to be the date.
_TIME_SHARE = 0.8
_SAMPLE_ROWS = 60

_TEXT_TIMES = ("%d %b %Y %H:%M", "%d %b %Y, %H:%M", "%d %B %Y %H:%M", "%d %B %Y, %H:%M", "%d %b %Y %H:%M:%S",
               "%d %b %Y, %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_time(value: Any) -> int | None:
    """A scrobble time as UTC seconds (the forms in this module's docstring), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    s = value.strip()
    if s.isdigit():
        if len(s) in (12, 13):
            return int(s) // 1000
        return int(s) if 9 <= len(s) <= 11 else None
    if s.endswith((" UTC", " GMT")):
        s = s[:-4]
    if len(s) >= 10 and s[4] == "-" and s[:4].isdigit():
        return parse_iso_utc(s)
    for fmt in _TEXT_TIMES:
        try:
            return int(datetime.strptime(s, fmt).replace(tzinfo=timezone.utc).timestamp())
        except ValueError:
            continue
    return None


def _norm_header(cell: str) -> str:
    return re.sub(r"[\s\-.]+", "_", cell.strip().strip('"').casefold())


@dataclass(frozen=True)
class CsvLayout:
    """Where a scrobble CSV keeps what: column indexes (0-based), the time columns in the order
    they are tried."""

    delimiter: str
    header: bool
    artist: int
    title: int
    times: tuple[int, ...]
    album: int | None = None
    mbid: int | None = None

    @property
    def width(self) -> int:
        return 1 + max(i for i in (self.artist, self.title, self.album, self.mbid, *self.times) if i is not None)


def _split(lines: list[str], delimiter: str) -> list[list[str]]:
    try:
        return [r for r in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in r)]
    except csv.Error:
        return []


def csv_layout(head: str) -> CsvLayout | None:
    """The layout of a scrobble CSV from the start of its text, or ``None`` when it is not one."""
    lines = head.splitlines()[:_SAMPLE_ROWS + 1]   # a last line cut short is outvoted by the rest
    best: tuple | None = None
    for d in _DELIMITERS:
        rows = _split(lines, d)
        if not rows:
            continue
        header = _header_layout(rows[0], d)
        if header is not None:
            return header
        widths = [len(r) for r in rows]
        width = max(set(widths), key=lambda w: (widths.count(w), w))
        score = (widths.count(width) / len(rows) >= 0.8, width >= 3, widths.count(width), width)
        if best is None or score > best[0]:
            best = (score, d, rows, width)
    if best is None or not best[0][0] or not best[0][1]:
        return None
    _, delimiter, rows, width = best
    return _content_layout([r for r in rows if len(r) >= width], delimiter, width)


def _header_layout(first: list[str], delimiter: str) -> CsvLayout | None:
    roles: dict[str, int] = {}
    for i, cell in enumerate(first):
        role = _ROLE_OF.get(_norm_header(cell))
        if role is not None and role not in roles:
            roles[role] = i
    times = tuple(roles[r] for r in ("epoch", "time") if r in roles)
    if "artist" not in roles or "title" not in roles or not times:
        return None
    return CsvLayout(delimiter, True, roles["artist"], roles["title"], times, roles.get("album"), roles.get("mbid"))


def _content_layout(rows: list[list[str]], delimiter: str, width: int) -> CsvLayout | None:
    def share(col: int, test, body: list[list[str]]) -> float:
        values = [r[col].strip() for r in body if r[col].strip()]
        return sum(1 for v in values if test(v)) / len(values) if values else 0.0

    def is_time(v: str) -> bool:
        return parse_time(v) is not None

    rest = rows[1:] or rows
    times = [c for c in range(width) if share(c, is_time, rest) >= _TIME_SHARE]
    if not times:
        return None
    header = len(rows) > 1 and not any(is_time(rows[0][c]) for c in times)   # an unknown header
    body = rows[1:] if header else rows
    times.sort(key=lambda c: (share(c, str.isdigit, body) < _TIME_SHARE, c))   # epoch columns first
    ids = {c for c in range(width) if c not in times and share(c, _UUID.fullmatch, body) == 1.0}
    empty = {c for c in range(width) if not any(r[c].strip() for r in body)}
    names = [c for c in range(width) if c not in times and c not in ids and c not in empty]
    if len(names) == 3:
        artist, album, title = names
    elif len(names) == 2:
        (artist, title), album = names, None
    else:
        return None
    mbid = title + 1 if title + 1 in ids else None
    return CsvLayout(delimiter, header, artist, title, tuple(times), album, mbid)


def sniff_name(name: str) -> str | None:
    """What a file name says: a ``.csv``/``.tsv`` naming scrobbles or Last.fm
    (``scrobbles-<user>.csv``, ``lastfm.csv``) is a scrobble CSV even when its content says
    nothing (it is then reported as broken); other CSVs (lastfm-to-csv names its file after the
    user) and JSON pages are known by content only."""
    low = name.lower()
    return CSV if low.endswith((".csv", ".tsv")) and re.search(r"scrobble|last[._ -]?fm", low) else None


def sniff_content(head: str) -> str | None:
    """The scrobble export the start of a file's text is: saved API pages, or a CSV with a layout."""
    start = head.lstrip()
    if start.startswith(("{", "[")):
        return PAGES if re.search(r'"recenttracks"\s*:', head) else None
    return CSV if start and csv_layout(head) is not None else None


def _cell(row: list[str], i: int | None) -> str | None:
    if i is None:
        return None
    v = row[i].strip()
    return v or None


def _read_csv(f: ExportFile, rows: ListenRows) -> None:
    text = read_text(f, rows.dropped)
    if text is None:
        return
    layout = csv_layout(text[:64 * 1024])
    if layout is None:
        broken(rows.dropped, f, "no artist, track and time columns found (not a scrobble CSV)")
        return
    rows.begin(f.name)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    first = True
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.drop(MALFORMED, reader.line_num, f"CSV error: {exc}")
            continue
        if first:
            first = False
            if layout.header:
                continue
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        if len(row) < layout.width:
            rows.drop(MALFORMED, line, f"{len(row)} columns, expected {layout.width}: "
                      f"{layout.delimiter.join(row)[:120]!r}")
            continue
        ts = next((t for t in (parse_time(row[c]) for c in layout.times) if t is not None), None)
        if ts is None:
            rows.drop(MALFORMED, line, f"no time: {row[layout.times[0]][:40]!r}")
            continue
        rows.add(line, ts=ts, artist=_cell(row, layout.artist), title=_cell(row, layout.title),
                 album=_cell(row, layout.album), recording_mbid=norm_mbid(_cell(row, layout.mbid)))
    rows.end()


def _name(value: Any, what: str) -> str | None:
    """A name from a page: text, or an object's ``#text`` (``name`` with ``extended=1``)."""
    if isinstance(value, dict):
        value = value.get("#text", value.get("name"))
    return text_field(value, what)


def _read_pages(f: ExportFile, rows: ListenRows) -> None:
    text = read_text(f, rows.dropped)
    data = None if text is None else load_json(f, text, rows.dropped)
    if data is None:
        return
    pages = data if isinstance(data, list) else [data]
    if not any(isinstance(p, dict) and isinstance(p.get("recenttracks"), dict) for p in pages):
        broken(rows.dropped, f, "no recenttracks page in it")
        return
    rows.begin(f.name)
    i = 0
    for page in pages:
        recent = page.get("recenttracks") if isinstance(page, dict) else None
        if not isinstance(recent, dict):
            i += 1
            rows.drop(MALFORMED, i, "not a recenttracks page")
            continue
        tracks = recent.get("track") or []
        for track in [tracks] if isinstance(tracks, dict) else tracks:
            i += 1
            _page_track(rows, i, track)
    rows.end()


def _page_track(rows: ListenRows, i: int, track: Any) -> None:
    if not isinstance(track, dict):
        rows.drop(MALFORMED, i, "not a JSON object")
        return
    attr = track.get("@attr")
    date = track.get("date")
    if date is None and isinstance(attr, dict) and str(attr.get("nowplaying", "")).lower() == "true":
        rows.drop(NOW_PLAYING, i, f"{_safe_name(track.get('artist'))} - {_safe_name(track.get('name'))}")
        return
    try:
        artist = _name(track.get("artist"), "artist")
        title = _name(track.get("name"), "name")
        album = _name(track.get("album"), "album")
        ts = None
        if isinstance(date, dict):
            ts = parse_time(date.get("uts"))
            if ts is None:
                ts = parse_time(date.get("#text"))
        elif date is not None:
            ts = parse_time(date)
        if ts is None:
            raise BadRow("no date" if date is None else f"date is not a time ({str(date)[:60]!r})")
    except BadRow as exc:
        rows.drop(MALFORMED, i, str(exc))
        return
    rows.add(i, ts=ts, artist=artist, title=title, album=album, recording_mbid=norm_mbid(track.get("mbid")))


def _safe_name(value: Any) -> str:
    try:
        return _name(value, "name") or ""
    except BadRow:
        return ""


def read_scrobble_files(files: Sequence[ExportFile], user: str) -> Listens:
    """One person's Last.fm files (CSV or saved pages, told apart by :func:`sniff_content`) as
    listens of ``user``; ``ts`` the START of each listen (UTC)."""
    user = check_id("user", user)
    rows = ListenRows(user, Dropped())
    for f in files:
        if sniff_content(head_text(f)) == PAGES:
            _read_pages(f, rows)
        else:
            _read_csv(f, rows)
    return rows.listens("lastfm", [f.name for f in files])


def read_scrobbles(path: str | Path, user: str) -> Listens:
    """Every Last.fm scrobble export under ``path`` (a person's folder, a zip, or one file) as
    listens of ``user``."""
    found = Dropped()
    files = [f for f in export_files(path, found)
             if (sniff_content(head_text(f)) or sniff_name(f.basename)) in FORMATS]
    out = read_scrobble_files(files, user)
    out.dropped.merge(found)
    return out
