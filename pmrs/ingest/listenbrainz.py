"""ListenBrainz listens (a person's export, or API answers saved as JSON) into listening events.

Recognised by content (a listen's ``listened_at`` or a submission's ``listen_type`` and
``payload``), in any of these shapes:

- the user export (a zip or folder): ``listens.jsonl`` or ``listens/**/*.jsonl``, one listen per
  line (a line that does not parse is a malformed row); older exports: one JSON array of listens
  (``listens.json``, ``<user>_lb-<date>.json``);
- the API's answer ``{"payload": {"listens": [...], ...}}`` (``playing_now`` answers included);
- a submission ``{"listen_type": "single" | "import" | "playing_now", "payload": [...]}``.

A listen ``{"listened_at", "track_metadata": {"artist_name", "track_name", "release_name",
"additional_info": {"recording_mbid", "recording_msid", "spotify_id", ...}, "mbid_mapping":
{"recording_mbid", ...}}, "recording_msid", "inserted_at"}`` becomes one row: the recording MBID
is ``mbid_mapping``'s (ListenBrainz's own match), else ``additional_info``'s (the submitter's);
``spotify_id`` (an ``open.spotify.com/track/...`` URL) the Spotify URI. ``listened_at`` is epoch
seconds (or their text, or ISO 8601); clients submit the time the track began, so ``ts`` is the
START of the listen. A listen without ``listened_at`` in a playing-now answer or submission is
:data:`~pmrs.ingest.exportfiles.NOW_PLAYING`; elsewhere it is malformed. ``duration_ms`` is the
track's length, not the time played: ``ms_played`` stays unknown.

The same listen twice (same ``listened_at`` and recording: its MBID, else its MSID, else artist
and title) is a :data:`~pmrs.ingest.listens.DUPLICATE`, across all of a person's files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from ..ids import check_id
from .exportfiles import (BadRow, ExportFile, ListenRows, NOW_PLAYING, broken, export_files, head_text, load_json,
                          norm_mbid, norm_spotify_uri, parse_iso_utc, read_text, text_field)
from .listens import MALFORMED, Dropped, Listens

__all__ = ["FORMAT", "FORMATS", "read_listenbrainz", "read_listenbrainz_files", "sniff_content", "sniff_name"]

FORMAT = "listenbrainz"
FORMATS = (FORMAT,)


def sniff_name(name: str) -> str | None:
    """``listens.jsonl`` / ``listens.json`` (the user export's names)."""
    return FORMAT if name.lower() in ("listens.jsonl", "listens.json") else None


def sniff_content(head: str) -> str | None:
    """Whether the start of a file's text is ListenBrainz listens (JSON, JSON lines): a listen's
    ``track_metadata`` beside ``listened_at`` or an API ``payload``, or a submission."""
    if not head.lstrip().startswith(("{", "[")):
        return None
    if re.search(r'"listen_type"\s*:', head) and re.search(r'"payload"\s*:', head):
        return FORMAT
    if re.search(r'"track_metadata"\s*:', head) and re.search(r'"(listened_at|payload)"\s*:', head):
        return FORMAT
    return None


def _listens(f: ExportFile, text: str, rows: ListenRows) -> list[tuple[int, Any, bool]] | None:
    """``(row, listen, playing_now)`` for each listen in the file; ``None`` when it has none."""
    if not f.basename.lower().endswith(".jsonl"):
        try:
            return _document(f, json.loads(text), rows)
        except json.JSONDecodeError:
            first = next((line for line in text.splitlines() if line.strip()), "")
            try:
                alone = json.loads(first)
            except json.JSONDecodeError:
                alone = None
            if not isinstance(alone, dict):
                load_json(f, text, rows.dropped)   # counts it as broken, with the parser's message
                return None
    out: list[tuple[int, Any, bool]] = []
    rows.begin(f.name)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line), False))
        except json.JSONDecodeError as exc:
            rows.drop(MALFORMED, n, f"line that does not parse: {exc.msg}")
    return out


def _document(f: ExportFile, data: Any, rows: ListenRows) -> list[tuple[int, Any, bool]] | None:
    rows.begin(f.name)
    now = False
    if isinstance(data, dict) and "payload" in data:
        payload = data["payload"]
        now = data.get("listen_type") == "playing_now"
        if isinstance(payload, dict):
            now = now or payload.get("playing_now") is True
            payload = payload.get("listens")
        data = payload
    elif isinstance(data, dict) and ("listened_at" in data or "track_metadata" in data):
        data = [data]
    if not isinstance(data, list):
        broken(rows.dropped, f, "no ListenBrainz listens in it (a list, a payload or a listen)")
        return None
    return [(i, obj, now) for i, obj in enumerate(data, start=1)]


def _time(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        return int(s) if s.isdigit() else parse_iso_utc(s)
    return None


def _listen_row(rows: ListenRows, i: int, obj: Any, playing_now: bool) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("track_metadata"), dict):
        rows.drop(MALFORMED, i, "not a listen (no track_metadata object)")
        return
    meta = obj["track_metadata"]
    info = meta.get("additional_info") if isinstance(meta.get("additional_info"), dict) else {}
    mapping = meta.get("mbid_mapping") if isinstance(meta.get("mbid_mapping"), dict) else {}
    try:
        artist = text_field(meta.get("artist_name"), "artist_name")
        title = text_field(meta.get("track_name"), "track_name")
        album = text_field(meta.get("release_name"), "release_name")
    except BadRow as exc:
        rows.drop(MALFORMED, i, str(exc))
        return
    listened_at = obj.get("listened_at")
    if listened_at is None:
        if playing_now or obj.get("playing_now") is True:
            rows.drop(NOW_PLAYING, i, f"{artist} - {title}")
        else:
            rows.drop(MALFORMED, i, "no listened_at")
        return
    ts = _time(listened_at)
    if ts is None:
        rows.drop(MALFORMED, i, f"listened_at is not a time ({str(listened_at)[:40]!r})")
        return
    mbid = norm_mbid(mapping.get("recording_mbid")) or norm_mbid(info.get("recording_mbid"))
    msid = obj.get("recording_msid") or info.get("recording_msid")
    recording = mbid or (msid if isinstance(msid, str) and msid else None) or \
        ((artist or "").casefold(), (title or "").casefold())
    rows.add(i, ts=ts, artist=artist, title=title, album=album, recording_mbid=mbid,
             spotify_uri=norm_spotify_uri(info.get("spotify_id")), key=(ts, recording))


def read_listenbrainz_files(files: Sequence[ExportFile], user: str) -> Listens:
    """One person's ListenBrainz files as listens of ``user`` (duplicates across files dropped);
    ``ts`` the START of each listen (UTC)."""
    user = check_id("user", user)
    rows = ListenRows(user, Dropped())
    for f in files:
        text = read_text(f, rows.dropped)
        listens = None if text is None else _listens(f, text, rows)
        if listens is None:
            continue
        for i, obj, now in listens:
            _listen_row(rows, i, obj, now)
        rows.end()
    return rows.listens(FORMAT, [f.name for f in files])


def read_listenbrainz(path: str | Path, user: str) -> Listens:
    """Every ListenBrainz file under ``path`` (a person's folder, an export zip, or one file) as
    listens of ``user``."""
    found = Dropped()
    files = [f for f in export_files(path, found)
             if (sniff_content(head_text(f)) or sniff_name(f.basename)) in FORMATS]
    out = read_listenbrainz_files(files, user)
    out.dropped.merge(found)
    return out
