"""A ``POST /1/submit-listens`` body checked as ListenBrainz checks it, before anything is written.

The rules and their messages follow ListenBrainz's ``submit_listen`` and ``validate_listen``
(listenbrainz-server, ``webserver/views/api.py`` and ``api_tools.py``; the limits are its
documented constants): the body at most :data:`MAX_LISTEN_PAYLOAD_SIZE` bytes, a JSON object with
``listen_type`` (``single``, ``import``, ``playing_now``) and a non-empty list ``payload`` of at
most :data:`MAX_LISTENS_PER_REQUEST` listens (one for ``single`` and ``playing_now``), at most
:data:`MAX_LISTEN_SIZE` bytes per listen on average; each listen holds ``listened_at`` (a whole
number of UNIX seconds, not before :data:`~pmrs.ingest.listens.MIN_LISTEN_TS` and not more than
:data:`LISTENED_AT_ALLOWED_SKEW_S` ahead; ``playing_now`` has none) and ``track_metadata`` with
non-empty ``artist_name`` and ``track_name`` strings, an optional ``release_name``, and in
``additional_info`` valid MBIDs, at most :data:`MAX_TAGS_PER_LISTEN` tags of at most
:data:`MAX_TAG_SIZE` characters and a ``duration_ms`` / ``duration`` within
:data:`MAX_DURATION_MS_LIMIT`. Any failure is a :class:`BadListens` (HTTP 400 with
ListenBrainz's message), and the whole request is refused.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass

from ..ingest.listens import MIN_LISTEN_TS
from ..ingest.resolve import clean_mbid, clean_spotify, name_key

MAX_LISTEN_SIZE = 10240
MAX_LISTENS_PER_REQUEST = 1000
MAX_LISTEN_PAYLOAD_SIZE = MAX_LISTEN_SIZE * MAX_LISTENS_PER_REQUEST
MAX_TAGS_PER_LISTEN = 50
MAX_TAG_SIZE = 64
MAX_DURATION_MS_LIMIT = 24 * 24 * 3600 * 1000
#: How far ahead of the server's clock a listen may be (clock skew), seconds.
LISTENED_AT_ALLOWED_SKEW_S = 3600
LISTEN_TYPES = ("single", "import", "playing_now")
_SINGLE_MBIDS = ("recording_mbid", "track_mbid", "release_mbid", "release_group_mbid")
_MULTI_MBIDS = ("artist_mbids", "work_mbids")


class BadListens(ValueError):
    """A refused submission: ``message`` is ListenBrainz's wording, ``status`` the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Listen:
    """One checked listen: ``listened_at`` (UNIX seconds; 0 for ``playing_now``), the names and
    the recording's MBID and Spotify URI when sent (cleaned; ``None`` otherwise)."""

    listened_at: int
    artist: str
    title: str
    release: str
    recording_mbid: str | None
    spotify_uri: str | None


def parse_submission(raw: bytes, now_s: float | None = None) -> tuple[str, list[Listen]]:
    """``(listen_type, listens)`` of a request body, every listen checked (module docstring);
    :class:`BadListens` for the first problem found."""
    if len(raw) > MAX_LISTEN_PAYLOAD_SIZE:
        raise BadListens(f"Payload too large. Payload cannot exceed {MAX_LISTEN_PAYLOAD_SIZE} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadListens(f"Cannot parse JSON document: {exc}") from None
    if not isinstance(data, dict):
        raise BadListens("Invalid JSON document submitted. Top level of JSON document should be a json object.")
    if "payload" not in data or "listen_type" not in data:
        raise BadListens("Invalid JSON document submitted.")
    payload = data["payload"]
    if not isinstance(payload, list):
        raise BadListens("The payload in the JSON document should be a list of listens.")
    if not payload:
        raise BadListens("JSON document does not contain any listens")
    if len(payload) > MAX_LISTENS_PER_REQUEST:
        raise BadListens(f"Too many listens. You may not submit more than {MAX_LISTENS_PER_REQUEST} listens at once.")
    if len(raw) > len(payload) * MAX_LISTEN_SIZE:
        raise BadListens(f"JSON document is too large. Each listens may not be larger than {MAX_LISTEN_SIZE} bytes.")
    listen_type = data["listen_type"]
    if listen_type not in LISTEN_TYPES:
        raise BadListens("JSON document requires a valid listen_type key.")
    if listen_type in ("single", "playing_now") and len(payload) > 1:
        raise BadListens("JSON document contains more than listen for a single/playing_now. It should contain only one.")
    now_s = time.time() if now_s is None else now_s
    return listen_type, [check_listen(listen, listen_type, now_s) for listen in payload]


def check_listen(listen, listen_type: str, now_s: float) -> Listen:
    """One listen of a ``listen_type`` submission as a :class:`Listen`, or :class:`BadListens`."""
    if not isinstance(listen, dict):
        raise BadListens("Invalid JSON document submitted. Each listen should be a json object.")
    ts = 0
    if listen_type == "playing_now":
        if "listened_at" in listen:
            raise BadListens("JSON document must not contain listened_at while submitting playing_now.")
        if len(listen) > 1:
            raise BadListens("JSON document may only contain track_metadata as top level key when submitting playing_now.")
    else:
        if "listened_at" not in listen:
            raise BadListens("JSON document must contain the key listened_at at the top level.")
        ts = listen["listened_at"]
        if isinstance(ts, str) and ts.strip().lstrip("-").isdigit():
            ts = int(ts)   # (ListenBrainz takes int(listened_at): "1700000000" and 1700000000.5 too)
        elif isinstance(ts, float) and math.isfinite(ts):
            ts = int(ts)
        if isinstance(ts, bool) or not isinstance(ts, int):
            raise BadListens("JSON document must contain an int value for listened_at.")
        if set(listen) - {"listened_at", "track_metadata"}:
            raise BadListens("JSON document may only contain listened_at and track_metadata top level keys")
        if ts < MIN_LISTEN_TS:
            raise BadListens(f"Value for key listened_at is too low. listened_at timestamp should be greater "
                             f"than {MIN_LISTEN_TS} (2002-10-01 00:00:00 UTC).")
        if ts > int(now_s) + LISTENED_AT_ALLOWED_SKEW_S:
            raise BadListens("Value for key listened_at is too high.")
    meta = listen.get("track_metadata")
    if not isinstance(meta, dict):
        raise BadListens("JSON document does not contain a valid metadata.track_name and/or track_metadata.artist_name.")
    for key in ("track_name", "artist_name"):
        value = meta.get(key)
        if not value or (isinstance(value, str) and not value.strip()):
            raise BadListens(f"JSON document does not contain required track_metadata.{key}.")
        if not isinstance(value, str):
            raise BadListens(f"{key} must be a single string.")
    release = meta.get("release_name") or ""
    if not isinstance(release, str):
        raise BadListens("release_name must be a single string.")
    info = meta.get("additional_info") or {}
    if not isinstance(info, dict):
        raise BadListens("track_metadata.additional_info must be a json object.")
    tags = info.get("tags") or []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS_PER_LISTEN:
        raise BadListens(f"JSON document may not contain more than {MAX_TAGS_PER_LISTEN} items in "
                         "track_metadata.additional_info.tags.")
    if any(not isinstance(t, str) or len(t) > MAX_TAG_SIZE for t in tags):
        raise BadListens(f"JSON document may not contain track_metadata.additional_info.tags longer than "
                         f"{MAX_TAG_SIZE} characters.")
    for key in (*_SINGLE_MBIDS, *_MULTI_MBIDS):
        value = info.get(key)
        items = (value if isinstance(value, list) else [value]) if value else []
        if any(not isinstance(v, str) or not _is_uuid(v) for v in items):
            raise BadListens(f"{key} MBID format invalid.")
    for key, scale in (("duration_ms", 1), ("duration", 1000)):
        if key in info and info[key] is not None:
            d = info[key]
            if isinstance(d, bool) or not isinstance(d, int) or d <= 0 or d * scale > MAX_DURATION_MS_LIMIT:
                raise BadListens(f"Value for {key} is invalid, should be a positive integer "
                                 f"not more than {MAX_DURATION_MS_LIMIT // scale}.")
    artist, title = meta["artist_name"], meta["track_name"]
    if not name_key(artist, title):
        raise BadListens("JSON document does not contain a valid metadata.track_name and/or track_metadata.artist_name.")
    # (Mopidy sends its tracks' MusicBrainz id, a recording's MBID, as track_mbid)
    mbid = clean_mbid(info.get("recording_mbid")) or clean_mbid(info.get("track_mbid"))
    spotify = clean_spotify(info.get("spotify_id")) if isinstance(info.get("spotify_id"), str) else None
    return Listen(ts, artist, title, release, mbid, spotify)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False
