"""Spotify's streaming histories (a person's "Download your data") into listening events.

Two exports, recognised by their file names and confirmed by their keys:

- :data:`BASIC`, the account data's ``StreamingHistory*.json`` (later ``StreamingHistory_music_*``
  and ``StreamingHistory_podcast_*``): a JSON array of ``{"endTime": "2019-01-01 12:34",
  "artistName", "trackName", "msPlayed"}``. ``endTime`` is when the stream ended, UTC, to the
  minute: ``ts`` is the END of the listen. Every row of a podcast file (or one keyed
  ``podcastName``/``episodeName``) is :data:`~pmrs.ingest.listens.NOT_A_SONG`.
- :data:`EXTENDED`, the extended streaming history (``endsong_*.json``,
  ``Streaming_History_Audio_*.json``, ``Streaming_History_Video_*.json``): a JSON array of
  ``{"ts": "2019-11-05T14:28:00Z", "ms_played", "master_metadata_track_name",
  "master_metadata_album_artist_name", "master_metadata_album_album_name", "spotify_track_uri",
  "episode_*", "audiobook_*", "skipped", ...}``. ``ts`` is when the stream ended, UTC: ``ts`` is
  the END of the listen. The keys differ between export years (``skipped``, ``audiobook_*``,
  ``ip_addr`` or ``ip_addr_decrypted``, ...); only the ones above are read and any may be absent.
  A row with an episode or audiobook and no track is NOT_A_SONG, one with nothing at all
  :data:`~pmrs.ingest.listens.NO_SONG`; in a video file only rows with a track URI are songs.
  ``skipped`` is true, false or unknown (null or absent); ``ms_played`` is kept either way.
  A local file (``spotify:local:...``) keeps its names and gets no URI.

The personal fields (``username``, ``platform``, ``conn_country``, ``ip_addr*``, ``user_agent*``,
``offline_timestamp``) are never read.

Both exports in one folder overlap (the basic one covers the last year of the extended one): a
basic row whose artist, title and minute an extended row already has (within a minute) is a
:data:`~pmrs.ingest.listens.DUPLICATE`; so is an extended row repeated exactly (two downloads of
the same history).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..ids import check_id
from .exportfiles import (BadRow, ExportFile, ListenRows, broken, export_files, head_text, int_field, load_json,
                          norm_spotify_uri, parse_iso_utc, read_text, text_field)
from .listens import DUPLICATE, MALFORMED, NO_SONG, NOT_A_SONG, Dropped, Listens, concat

__all__ = ["BASIC", "EXTENDED", "FORMATS", "read_extended_history", "read_spotify", "read_spotify_files",
           "read_streaming_history", "sniff_content", "sniff_name"]

BASIC = "spotify-basic"
EXTENDED = "spotify-extended"
FORMATS = (BASIC, EXTENDED)

_BASIC_NAME = re.compile(r"StreamingHistory(_music|_podcast|_video)?_?\d*\.json", re.I)
_EXTENDED_NAME = re.compile(r"(endsong|endvideo|Streaming_History_(Audio|Video))([_ -].*)?\.json", re.I)
_NOT_SONGS = ("episode_name", "episode_show_name", "spotify_episode_uri", "audiobook_title", "audiobook_uri",
              "audiobook_chapter_uri", "audiobook_chapter_title")


def sniff_name(name: str) -> str | None:
    """The Spotify export a file name says, or ``None``."""
    if _BASIC_NAME.fullmatch(name):
        return BASIC
    if _EXTENDED_NAME.fullmatch(name):
        return EXTENDED
    return None


def sniff_content(head: str) -> str | None:
    """The Spotify export the start of a file's text is (a JSON array of plays with its keys)."""
    if not head.lstrip().startswith("["):
        return None
    if re.search(r'"ms_played"\s*:', head) and re.search(r'"ts"\s*:', head):
        return EXTENDED
    if re.search(r'"endTime"\s*:', head) and re.search(r'"msPlayed"\s*:', head):
        return BASIC
    return None


def _is_podcast_file(f: ExportFile) -> bool:
    return "podcast" in f.basename.lower()


def _is_video_file(f: ExportFile) -> bool:
    return "video" in f.basename.lower()


def _rows_of(f: ExportFile, dropped: Dropped) -> list | None:
    text = read_text(f, dropped)
    data = None if text is None else load_json(f, text, dropped)
    if text is not None and data is not None and not isinstance(data, list):
        broken(dropped, f, "not a JSON array of plays")
        return None
    return data


def _read_extended(files: Sequence[ExportFile], rows: ListenRows) -> None:
    for f in files:
        data = _rows_of(f, rows.dropped)
        if data is None:
            continue
        video = _is_video_file(f)
        rows.begin(f.name)
        for i, obj in enumerate(data, start=1):
            _extended_row(rows, i, obj, video)
        rows.end()


def _extended_row(rows: ListenRows, i: int, obj: object, video: bool) -> None:
    if not isinstance(obj, dict):
        rows.drop(MALFORMED, i, "not a JSON object")
        return
    try:
        title = text_field(obj.get("master_metadata_track_name"), "master_metadata_track_name")
        artist = text_field(obj.get("master_metadata_album_artist_name"), "master_metadata_album_artist_name")
        album = text_field(obj.get("master_metadata_album_album_name"), "master_metadata_album_album_name")
        uri = text_field(obj.get("spotify_track_uri"), "spotify_track_uri")
        ms = int_field(obj.get("ms_played"), "ms_played")
        ts = parse_iso_utc(obj.get("ts"))
        if ts is None:
            raise BadRow(f"ts is not an ISO 8601 time ({str(obj.get('ts'))[:40]!r})")
    except BadRow as exc:
        rows.drop(MALFORMED, i, str(exc))
        return
    if title is None and uri is None:
        if any(obj.get(k) for k in _NOT_SONGS):
            rows.drop(NOT_A_SONG, i, "episode" if any(obj.get(k) for k in _NOT_SONGS[:3]) else "audiobook")
        else:
            rows.drop(NOT_A_SONG if video else NO_SONG, i, "no track name or URI")
        return
    if video and uri is None:
        rows.drop(NOT_A_SONG, i, "video without a track URI")
        return
    skipped = obj.get("skipped")
    rows.add(i, ts=ts, artist=artist, title=title, album=album, spotify_uri=norm_spotify_uri(uri), ms_played=ms,
             skipped=skipped if isinstance(skipped, bool) else None, key=("extended", ts, uri, artist, title, ms))


def _read_basic(files: Sequence[ExportFile], rows: ListenRows, extended: Counter) -> None:
    for f in files:
        data = _rows_of(f, rows.dropped)
        if data is None:
            continue
        podcast = _is_podcast_file(f)
        rows.begin(f.name)
        for i, obj in enumerate(data, start=1):
            _basic_row(rows, i, obj, podcast, extended)
        rows.end()


def _basic_row(rows: ListenRows, i: int, obj: object, podcast: bool, extended: Counter) -> None:
    if not isinstance(obj, dict):
        rows.drop(MALFORMED, i, "not a JSON object")
        return
    try:
        artist = text_field(obj.get("artistName"), "artistName")
        title = text_field(obj.get("trackName"), "trackName")
        ms = int_field(obj.get("msPlayed"), "msPlayed")
        ts = parse_iso_utc(obj.get("endTime"))
        if ts is None:
            raise BadRow(f"endTime is not a time ({str(obj.get('endTime'))[:40]!r})")
    except BadRow as exc:
        rows.drop(MALFORMED, i, str(exc))
        return
    if podcast or obj.get("podcastName") or obj.get("episodeName"):
        rows.drop(NOT_A_SONG, i, "podcast episode")
        return
    if artist and title and extended:
        minute = ts // 60
        for m in (minute, minute - 1, minute + 1):
            k = (artist.casefold(), title.casefold(), m)
            if extended[k] > 0:
                extended[k] -= 1
                rows.drop(DUPLICATE, i, f"{artist} - {title}: also in the extended history")
                return
    rows.add(i, ts=ts, artist=artist, title=title, ms_played=ms)


def read_spotify_files(files: Sequence[ExportFile], user: str) -> Listens:
    """One person's Spotify files (basic and extended, told apart by :func:`sniff_content`, else
    :func:`sniff_name`) as listens of ``user``."""
    user = check_id("user", user)
    kinds = {f: sniff_content(head_text(f)) or sniff_name(f.basename) for f in files}
    ext_files = [f for f in files if kinds[f] == EXTENDED]
    basic_files = [f for f in files if kinds[f] == BASIC]
    dropped = Dropped()
    rows = ListenRows(user, dropped)
    _read_extended(ext_files, rows)
    ext = rows.listens(EXTENDED, [f.name for f in ext_files])
    seen = Counter()
    if basic_files and ext.rows:
        artists, titles = ext.table["artist"].to_pylist(), ext.table["title"].to_pylist()
        for a, t, s in zip(artists, titles, ext.table["ts"].cast("int64").to_pylist()):
            if a and t:
                seen[(a.casefold(), t.casefold(), s // 60)] += 1
    rows = ListenRows(user, Dropped())
    _read_basic(basic_files, rows, seen)
    basic = rows.listens(BASIC, [f.name for f in basic_files])
    return concat([ext, basic], "spotify")


def read_spotify(path: str | Path, user: str) -> Listens:
    """Every Spotify streaming history file under ``path`` (a person's folder, a zip, or one file)
    as listens of ``user``: both exports, ``ts`` the END of each listen (UTC)."""
    found = Dropped()
    files = [f for f in export_files(path, found)
             if (sniff_content(head_text(f)) or sniff_name(f.basename)) in FORMATS]
    out = read_spotify_files(files, user)
    out.dropped.merge(found)
    return out


def read_streaming_history(path: str | Path, user: str) -> Listens:
    """The basic account export's ``StreamingHistory*.json`` under ``path`` only."""
    files = [f for f in export_files(path) if (sniff_content(head_text(f)) or sniff_name(f.basename)) == BASIC]
    return read_spotify_files(files, user)


def read_extended_history(path: str | Path, user: str) -> Listens:
    """The extended streaming history's files under ``path`` only."""
    files = [f for f in export_files(path) if (sniff_content(head_text(f)) or sniff_name(f.basename)) == EXTENDED]
    return read_spotify_files(files, user)
