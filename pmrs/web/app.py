"""The ``pmrs-web`` application (Starlette, Jinja2 templates): a real client of ``pmrs-server``.

Every recommendation, song and bundle description comes through the remote recommender
(:func:`pmrs.connect`: :class:`pmrs.Recommender`'s verbs, result types and errors over gRPC);
only what the API has no call for (catalog search, user id prefixes, the map's embeddings, clips
and reports) is read from the work directory, read-only (:mod:`pmrs.web.data`). Writes carry the
token the app was configured with (:class:`WebConfig`), never one from the page.

Errors are pages (or, for the page's own requests, a message and a status): a PMRS error maps
from its gRPC code to an HTTP status (:data:`HTTP_STATUS`), bad input is 400, and anything unexpected is logged and
answered 500 with a short message, never a traceback. Templates autoescape everything.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pmrs.errors import NotFound, PMRSError
from pmrs.live.songs import MAX_CLIP_BYTES
from pmrs.remote import RemoteRecommender, connect
from pmrs.serving import contract
from pmrs.serving.recommend import Filters
from pmrs.telemetry import WebMetrics, figures

from .data import AUDIO_TYPES, BadQuery, WorkdirData
from .guard import SameOriginGuard, allowed_hosts
from .measure import Measured

log = logging.getLogger("pmrs.web")
HERE = Path(__file__).resolve().parent

#: A PMRS error's gRPC code -> the HTTP status the page answers with.
#: Most played songs a history page lists.
HISTORY_K = 50
HTTP_STATUS = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "ALREADY_EXISTS": 409,
               "RESOURCE_EXHAUSTED": 413, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
               "UNAUTHENTICATED": 502, "PERMISSION_DENIED": 502, "FAILED_PRECONDITION": 409}
#: What a listener reads for some of them.
HINTS = {"UNAVAILABLE": "pmrs-server is not answering (down, restarting, or loading a bundle); "
                        "try again in a moment.",
         "DEADLINE_EXCEEDED": "pmrs-server took too long to answer; try again.",
         "PERMISSION_DENIED": "pmrs-server refused this web app's token (see its write token setting).",
         "UNAUTHENTICATED": "pmrs-server wants a token this web app was not given."}
#: Threads making the calls a page makes at once (per-genre lists beside the list, neighbours).
CALL_THREADS = 4
#: How long the bundle's description is reused, seconds.
INFO_TTL_S = 1.0
#: Songs the listener's view asks for; neighbours per source on a song's page.
LIST_K, NEIGHBOURS_K, GENRE_K = 20, 8, 5
SIMILAR_ARTISTS = 10
#: Songs a radio page asks for at a time (the player asks for more when fewer are left).
RADIO_K = 10
#: Songs of an artist whose neighbours are asked for (one SimilarSongs call each), at most.
ARTIST_SEEDS = 20
GENRE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")
_SONG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")   # ids the upload form accepts for new songs


@dataclass(frozen=True)
class WebConfig:
    """``[web]`` settings (flags override); the write token is never a setting here, it comes
    from ``$PMRS_WRITE_TOKEN`` / ``$PMRS_TOKEN`` or ``token_file``."""

    bind: str = "127.0.0.1:8080"
    target: str = "127.0.0.1:50051"
    timeout_s: float = 5.0          # deadline of a read (a page makes a few)
    upload_timeout_s: float = 60.0  # deadline of AddSong (the server decodes the clip and runs its CNN)
    retries: int = 1
    token_file: str | None = None
    tls: bool = False               # TLS to pmrs-server (implied by ca_file or cert_file)
    ca_file: str | None = None      # roots to trust (a private CA); default: the system's
    cert_file: str | None = None    # the web app's client certificate, for a server that wants one
    key_file: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # host names the page answers to besides loopback and the bind host
    https_cert: str | None = None   # PEM certificate: serve the page over HTTPS (with https_key)
    https_key: str | None = None
    insecure: bool = False          # allow plain HTTP on an address other than loopback
    metrics_bind: str = "127.0.0.1:0"  # the page's Prometheus metrics (HOST:PORT; "": none)
    metrics_public: bool = False    # allow them off loopback


class Web:
    """The application's state: the client, the work directory's data, the templates."""

    def __init__(self, workdir, client: RemoteRecommender, can_write: bool, uploader: RemoteRecommender | None = None):
        self.client, self.data, self.can_write = client, WorkdirData(workdir), can_write
        self.uploader = uploader or client
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                 undefined=jinja2.StrictUndefined)
        env.filters["colour"] = self.colour
        env.filters["inline"] = inline_markdown
        self.templates = Jinja2Templates(env=env)
        self._genres: list[str] = []
        self._known: list[str] = []
        self._info: tuple[float, object] | None = None
        self.pool = ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="pmrs-web-calls")
        self.metrics = WebMetrics()

    def colour(self, genre: str) -> str:
        """A genre's colour: by its place among the bundle's genres (the ones it does not list
        after them, in the order first seen)."""
        if genre not in self._genres:
            self._genres = self._genres + [genre]
        known = self._known
        i = known.index(genre) if genre in known else len(known) + self._genres.index(genre)
        return GENRE_COLOURS[i % len(GENRE_COLOURS)]

    def page(self, request: Request, name: str, code: int = 200, **context) -> Response:
        context.setdefault("can_write", self.can_write)
        context.setdefault("max_clip_mib", MAX_CLIP_BYTES // 2**20)
        self._known = self.data.genres()   # (once a page: the map colours thousands of points)
        return self.templates.TemplateResponse(request, name, context, status_code=code)

    def info(self):
        """The served bundle's description, asked at most every ``INFO_TTL_S`` seconds (every page
        shows it; a swapped bundle shows within that long)."""
        now = time.monotonic()
        cached = self._info
        if cached is None or now - cached[0] > INFO_TTL_S:
            cached = self._info = (now, self.client.info())
        return cached[1]


def _web(request: Request) -> Web:
    return request.app.state.web


def _float(params, name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadQuery(f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise BadQuery(f"{name} must be between 0 and 1, got {raw[:40]!r}")
    return value


def _year(params, name: str) -> int:
    raw = (params.get(name) or "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 0 < int(raw) < 10000:
        raise BadQuery(f"{name.replace('_', ' ')} must be a year, got {raw[:40]!r}")
    return int(raw)


def listener_query(request: Request, sources: list[str]) -> dict:
    """The listener's request from the page's query string: ``user`` or ``seeds`` (comma
    separated), ``share.<source>`` for the sources moved, ``diversity``, ``genre``,
    ``min_year``, ``max_year``."""
    p = request.query_params
    user = (p.get("user") or "").strip()
    seeds = [s for s in (p.get("seeds") or "").split(",") if s.strip()]
    if len(user) > 256 or len(seeds) > contract.MAX_SEEDS:
        raise BadQuery("too long a user id, or too many seed songs")
    shares = {}
    for name in sources[1:]:
        value = _float(p, f"share.{name}")
        if value is not None:
            shares[name] = value
    if sum(shares.values()) > 1.0 + 1e-9:
        raise BadQuery("the shares add up to more than 1")
    genre = (p.get("genre") or "").strip()
    return {"user": user, "seeds": [s.strip() for s in seeds], "shares": shares,
            "diversity": _float(p, "diversity"), "genres": [genre] if genre else [],
            "min_year": _year(p, "min_year"), "max_year": _year(p, "max_year")}


def recommendations(web: Web, q: dict) -> dict:
    """The list and the per-genre tabs for the listener's request ``q``. A user id the server
    does not know is taken as a prefix: the first known id that starts with it is shown, and
    the answer says so."""
    user, note = q["user"], ""
    if not user and not q["seeds"]:
        raise BadQuery("type a user id (or its first characters), or pick seed songs")

    def ask(user: str):
        """The list and (at once, on another thread) the per-genre lists."""
        genres = web.pool.submit(web.client.recommend_by_genre, user or None, q["seeds"], k=GENRE_K)
        try:
            recs = web.client.recommend(user or None, q["seeds"], k=LIST_K, shares=q["shares"] or None,
                                        diversity=q["diversity"], explain=True,
                                        filters=Filters(genres=tuple(q["genres"]), min_year=q["min_year"],
                                                        max_year=q["max_year"]))
        except BaseException:
            genres.cancel()
            raise
        return recs, genres
    try:
        recs, genres = ask(user)
    except NotFound:
        if not user:
            raise
        matches = [u for u in web.data.users(user, limit=2) if u != user]
        if not matches:
            raise NotFound(f"no user {user!r}, and no user id starts with it") from None
        user, note = matches[0], f"no user {user!r}: showing {matches[0]}, the first id that starts with it"
        recs, genres = ask(user)
    by_genre = genres.result()
    return {"user": user, "seeds": q["seeds"], "note": note, "songs": recs.songs, "folded_in": recs.folded_in,
            "by_genre": by_genre, "version": recs.bundle_version}


# -- pages ------------------------------------------------------------------------------------

def index(request: Request) -> Response:
    web = _web(request)
    info = web.info()
    sources = [s.name for s in info.sources]
    q = listener_query(request, sources)
    result, error, status = None, None, 200
    if q["user"] or q["seeds"]:
        try:
            result = recommendations(web, q)
        except PMRSError as exc:
            if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise
            error, status = _message(exc), HTTP_STATUS.get(exc.code, 500)
    snap = web.data.snapshot()
    seeds = [web.data.song_fields(s) for s in q["seeds"]]
    defaults = contract.Defaults.from_manifest(snap.manifest.get("defaults") if snap else None)
    users = snap.users() if snap else []
    return web.page(request, "index.html", status, info=info, sources=sources, q=q, result=result,
                    error=error, status_code=status, genres=web.data.genres(), seeds=seeds,
                    defaults=dict(defaults.shares), defaults_diversity=defaults.diversity,
                    example_user=bytes(users[0]).decode() if len(users) else "")


def fragment(request: Request) -> Response:
    """The list and tabs alone (what the page's script swaps in as sliders move)."""
    web = _web(request)
    sources = [s.name for s in web.info().sources]
    result = recommendations(web, listener_query(request, sources))
    return web.page(request, "_recs.html", result=result, sources=sources)


#: The page's icon: a note on the header's colour (browsers ask for /favicon.ico on every site).
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#243447"/><path d="M6 3v7.3A2 2 0 1 0 7 12V6h4V3z" fill="#fff"/></svg>')


def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


def api_search(request: Request) -> Response:
    web = _web(request)
    return JSONResponse({"songs": web.data.search(request.query_params.get("q", ""))})


def api_users(request: Request) -> Response:
    web = _web(request)
    return JSONResponse({"users": web.data.users(request.query_params.get("prefix", ""))})


async def api_play(request: Request) -> Response:
    web = _web(request)
    form = await request.form()
    user, song = str(form.get("user") or "").strip(), str(form.get("song") or "").strip()
    if not user or not song:
        raise BadQuery("a play needs a user and a song")
    if not web.can_write:
        raise HTTPException(403, "this web app was started without a write token (PMRS_WRITE_TOKEN)")
    from starlette.concurrency import run_in_threadpool
    written = await run_in_threadpool(web.client.record_plays, user, {song: 1})
    return JSONResponse({"sequence": written.seq, "duplicate": written.duplicate})


async def api_feedback(request: Request) -> Response:
    """A like, skip, dislike or hidden artist (:mod:`pmrs.live.feedback`) through the web app's token."""
    from pmrs.live.feedback import ACTIONS

    web = _web(request)
    form = await request.form()
    user, song = str(form.get("user") or "").strip(), str(form.get("song") or "").strip()
    action = str(form.get("action") or "")
    if not user or not song:
        raise BadQuery("feedback needs a user and a song")
    if action not in ACTIONS:
        raise BadQuery(f"action must be one of {', '.join(ACTIONS)}")
    if not web.can_write:
        raise HTTPException(403, "this web app was started without a write token (PMRS_WRITE_TOKEN)")
    from starlette.concurrency import run_in_threadpool
    written = await run_in_threadpool(web.client.record_feedback, user, song, action)
    return JSONResponse({"sequence": written.seq, "duplicate": written.duplicate})


def radio_start(params) -> dict:
    """A radio's start from a page's query string or a player's request: ``song``, ``artist``,
    ``seeds`` (comma separated) and ``user`` (the listener; alone, the start)."""
    def get(name: str) -> str:
        return str(params.get(name) or "").strip()

    seeds = [s.strip() for s in get("seeds").split(",") if s.strip()]
    start = {"song_id": get("song") or None, "artist": get("artist") or None, "seed_song_ids": seeds,
             "user_id": get("user") or None}
    if len(seeds) > contract.MAX_SEEDS or any(len(v) > 1024 for v in (get("song"), get("artist"), get("user"))):
        raise BadQuery("too long a start, or too many seed songs")
    return start


def radio_songs(web: Web, songs) -> list[dict]:
    """A radio's songs as the player reads them: ids, names and the clip's URL (``None``: no clip)."""
    return [{"song_id": s.song_id, "title": s.title, "artist": s.artist, "genre": s.genre, "sources": list(s.sources),
             "clip": f"/media/{quote(s.song_id, safe='')}" if web.data.clip(s.song_id) is not None else None}
            for s in songs]


def radio_page(request: Request) -> Response:
    """A radio from a song, an artist, seed songs or a user: its first songs, and the player (the
    page's script) that plays their clips one after another and asks for more with the token."""
    web = _web(request)
    start = radio_start(request.query_params)
    got = web.client.radio(**start, k=RADIO_K)
    if start["song_id"]:
        f = web.data.song_fields(start["song_id"])
        title = f"a song: {f['title'] or start['song_id']}" + (f" by {f['artist']}" if f["artist"] else "")
    elif start["artist"]:
        title = f"an artist: {start['artist']}"
    elif start["seed_song_ids"]:
        title = f"{len(start['seed_song_ids'])} songs"
    else:
        title = f"the songs {start['user_id']} plays most"
    return web.page(request, "radio.html", title=title, start=start, songs=radio_songs(web, got.songs),
                    token=got.token, relaxed=got.relaxed)


async def api_radio(request: Request) -> Response:
    """The next songs of a radio for the player: JSON ``{"token", "session": [[song_id, action],
    ...], "k"}`` (or a start, as the page's query string, without a token) in, ``{"songs",
    "token"}`` out. Writes nothing (the player sends the listener's feedback to /api/feedback)."""
    from starlette.concurrency import run_in_threadpool

    web = _web(request)
    try:
        body = await request.json()
    except ValueError:
        raise BadQuery("the radio takes a JSON object") from None
    if not isinstance(body, dict):
        raise BadQuery("the radio takes a JSON object")
    session = body.get("session") or []
    if not isinstance(session, list) or not all(isinstance(e, list) and len(e) == 2 for e in session):
        raise BadQuery("session is a list of [song_id, action] pairs")
    k = body.get("k") or RADIO_K
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise BadQuery("k must be a whole number from 1 to 100")
    token = body.get("token") or None
    start = radio_start(body)
    got = await run_in_threadpool(lambda: web.client.radio(**start, k=k, token=token,
                                                           session=[(str(s), str(a)) for s, a in session]))
    return JSONResponse({"songs": radio_songs(web, got.songs), "token": got.token, "relaxed": got.relaxed},
                        headers={"Cache-Control": "no-store"})


def user_page(request: Request) -> Response:
    """A listener's history (plays, likes, dislikes, skips, hidden artists, top artists and
    genres), with undo for what can be taken back."""
    web = _web(request)
    history = web.client.history(request.path_params["user_id"], limit=HISTORY_K)
    hidden = []   # (artist, a song of theirs: undo_hide_artist names the artist by a song)
    for artist in history.hidden_artists:
        try:
            found = web.data.search(artist)
        except BadQuery:
            found = []
        song = next((s["song_id"] for s in found if str(s.get("artist", "")).casefold() == artist), None)
        hidden.append((artist, song))
    return web.page(request, "user.html", h=history, hidden=hidden)


def song_page(request: Request) -> Response:
    web = _web(request)
    song_id = request.path_params["song_id"]
    song = web.client.song(song_id)
    info = web.info()

    def near(source: str):
        try:
            return web.client.similar_songs(song_id, k=NEIGHBOURS_K, mode=source).songs
        except NotFound:
            return None     # the song has no vector in this source
    # one call per source, at once (the server answers them in parallel)
    names = [s.name for s in info.sources]
    neighbours = dict(zip(names, web.pool.map(near, names)))
    clip = web.data.clip(song_id)
    tags = song.tags   # (tag, weight), heaviest first, from the API
    spaces = {s.name: s.space for s in info.sources}
    return web.page(request, "song.html", song=song, neighbours=neighbours, spaces=spaces, has_clip=clip is not None,
                    clip_type=clip[1] if clip else "", tags=tags)


def _songs_or_404(request: Request, key: str, find, missing: str) -> tuple[str, list[dict]]:
    """The path parameter ``key`` and the catalog songs ``find`` gives for it; 404 when none."""
    name = request.path_params[key]
    songs = find(name)
    if not songs:
        raise HTTPException(404, missing.format(name[:200]))
    return name, songs


def artist_page(request: Request) -> Response:
    """An artist's songs in the catalog, and the artists of their songs' neighbours (of the first
    :data:`ARTIST_SEEDS` songs: a page costs a bounded number of calls), counted."""
    web = _web(request)
    name, songs = _songs_or_404(request, "name", web.data.artist_songs, "no artist {!r} in the catalog")

    def near(song_id: str):
        try:
            return web.client.similar_songs(song_id, k=NEIGHBOURS_K).songs
        except NotFound:
            return []
    counts: dict[str, int] = {}
    for found in web.pool.map(near, [s["song_id"] for s in songs[:ARTIST_SEEDS]]):
        for s in found:
            if s.artist and s.artist != name:
                counts[s.artist] = counts.get(s.artist, 0) + 1
    similar = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:SIMILAR_ARTISTS]
    return web.page(request, "artist.html", artist=name, songs=songs, similar=similar)


def tag_page(request: Request) -> Response:
    web = _web(request)
    tag, songs = _songs_or_404(request, "tag", web.data.tag_songs, "no song tagged {!r} in the catalog")
    return web.page(request, "artist.html", artist=tag, songs=songs, similar=None)


def media(request: Request) -> Response:
    web = _web(request)
    found = web.data.clip(request.path_params["song_id"])
    if found is None:
        raise HTTPException(404, "no clip for this song")
    path, mime = found
    return FileResponse(path, media_type=mime)


def upload_form(request: Request) -> Response:
    return _web(request).page(request, "upload.html", form={}, error=None, status=200)



class _TooLarge(Exception):
    """An upload's body went past :data:`MAX_UPLOAD_BYTES` while it was read."""


#: The largest upload body: a clip of ``MAX_CLIP_BYTES`` and the form's other fields.
MAX_UPLOAD_BYTES = MAX_CLIP_BYTES + 64 * 1024


def _limited(receive, limit: int):
    """``receive`` that raises :class:`_TooLarge` as soon as the body read passes ``limit``
    bytes: an oversized upload is refused while it streams, not after it was stored."""
    seen = 0

    async def inner():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return inner


async def upload(request: Request) -> Response:
    web = _web(request)
    from starlette.concurrency import run_in_threadpool

    too_large = (f"the upload is larger than {MAX_CLIP_BYTES // 2**20} MiB, the most a clip may be")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:   # refused before a byte is read
        return web.page(request, "upload.html", 413, form={}, error=too_large, status=413)
    request = Request(request.scope, _limited(request.receive, MAX_UPLOAD_BYTES))
    try:
        form = await request.form(max_files=1, max_fields=20, max_part_size=MAX_CLIP_BYTES + 1)
    except _TooLarge:
        return web.page(request, "upload.html", 413, form={}, error=too_large, status=413)
    except Exception as exc:   # a malformed or oversized multipart body
        code = 413 if "size" in str(exc).lower() else 400
        return web.page(request, "upload.html", code, form={}, error=f"the upload could not be read: {exc}",
                        status=code)
    fields = {k: str(form.get(k) or "").strip() for k in ("song_id", "title", "artist", "genre", "year")}
    clip = form.get("clip")

    def refuse(status: int, message: str) -> Response:
        return web.page(request, "upload.html", status, form=fields, error=message, status=status)

    if not web.can_write:
        return refuse(403, "this web app was started without a write token (PMRS_WRITE_TOKEN), so it cannot add songs")
    if not fields["title"] or not fields["artist"]:
        return refuse(400, "a new song needs a title and an artist (the song id is optional)")
    if not fields["song_id"]:   # the id the ingest would give this song
        from pmrs.ingest.resolve import new_song_id
        fields["song_id"] = new_song_id(None, fields["artist"], fields["title"])
    if not _SONG_ID.match(fields["song_id"]):
        return refuse(400, "a song id is 1 to 256 letters, digits, '_', '.', ':' or '-'")
    if fields["year"] and not (fields["year"].isdigit() and 0 < int(fields["year"]) < 10000):
        return refuse(400, "the year must be a year")
    if clip is None or not hasattr(clip, "read") or not clip.filename:
        return refuse(400, "choose an audio clip to upload")
    data = await clip.read()
    if len(data) > MAX_CLIP_BYTES:
        return refuse(413, f"the clip is {len(data) / 2**20:.1f} MiB; at most {MAX_CLIP_BYTES // 2**20} MiB")
    if not data:
        return refuse(400, "the clip is empty")
    suffix = Path(clip.filename).suffix.lower()
    if suffix not in AUDIO_TYPES:
        return refuse(400, f"{clip.filename!r} is not an audio file this server reads "
                           f"({', '.join(sorted(AUDIO_TYPES))})")
    try:
        await run_in_threadpool(lambda: web.uploader.add_song(
            fields["song_id"], title=fields["title"], artist=fields["artist"], genre=fields["genre"],
            year=int(fields["year"] or 0), audio=data, filename=f"upload{suffix}"))
    except PMRSError as exc:
        return refuse(HTTP_STATUS.get(exc.code, 500), _message(exc))
    return RedirectResponse(f"/songs/{fields['song_id']}", status_code=303)


def map_page(request: Request) -> Response:
    web = _web(request)
    info = web.info()   # the map is of the served bundle: say so when the server is down
    points = web.data.map_points()
    svg = None
    if points:
        xs, ys = [p.x for p in points], [p.y for p in points]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        w, h, pad = 900, 600, 20
        sx = (w - 2 * pad) / ((x1 - x0) or 1.0)
        sy = (h - 2 * pad) / ((y1 - y0) or 1.0)
        svg = {"w": w, "h": h, "points": [(p, pad + (p.x - x0) * sx, h - pad - (p.y - y0) * sy) for p in points]}
    genres = sorted({p.genre for p in points})
    return web.page(request, "map.html", info=info, svg=svg, genres=genres,
                    cold=sum(p.cold for p in points), n=len(points))


def lab(request: Request) -> Response:
    web = _web(request)
    info = web.info()
    reports = []
    for r in web.data.reports():
        shown = set(_IMAGE.findall(r["markdown"]))   # plots the text places are not repeated under it
        reports.append(dict(r, blocks=markdown_blocks(r["markdown"]), plots=[p for p in r["plots"] if p not in shown]))
    return web.page(request, "lab.html", info=info, reports=reports)


def lab_figures(request: Request) -> Response:
    """The figures the lab shows live (its script asks every few seconds): this page's own
    metrics, and the served pmrs-server's, scraped from the address it gives in GetBundleInfo
    (loopback by default: shown when this page runs on the same machine)."""
    web = _web(request)
    out = {"web": figures(generate_latest(web.metrics.registry).decode(), "pmrs_web_"), "server": None}
    try:
        url = web.info().metrics_url
    except PMRSError as exc:
        url, out["server_error"] = "", _message(exc)
    if url:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                out["server"] = figures(r.read().decode())
            out["server_url"] = url
        except (OSError, ValueError) as exc:
            out["server_error"] = f"cannot read the server's metrics at {url}: {exc}"
    elif "server_error" not in out:
        out["server_error"] = "the server serves no metrics (started with --metrics-bind '')"
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


def report_file(request: Request) -> Response:
    found = _web(request).data.report_file(request.path_params["path"])
    if found is None:
        raise HTTPException(404, "no such report file")
    return FileResponse(found[0], media_type=found[1])


_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_INLINE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)|\*\*(.+?)\*\*|`([^`]+)`")
_REPORT_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")   # a file name inside the report's folder


def inline_markdown(text: str, report: str) -> Markup:
    """A report line's text, escaped, with ``**bold**``, ```code``` and ``![alt](file)`` (an image
    in the report's own folder, linking to its full size) as HTML."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[pos:m.start()]))
        alt, src, bold, code = m.groups()
        if src is not None and _REPORT_FILE.match(src):
            url = f"/lab/files/{quote(report, safe='')}/{quote(src)}"
            out.append(Markup('<a class="plot" href="{0}"><img src="{0}" alt="{1}" loading="lazy"></a>').format(url, alt or src))
        elif bold is not None:
            out.append(Markup("<strong>{0}</strong>").format(bold))
        elif code is not None:
            out.append(Markup("<code>{0}</code>").format(code))
        else:
            out.append(escape(m.group(0)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def markdown_blocks(text: str) -> list[tuple[str, object]]:
    """A report's Markdown as blocks the template renders escaped: ``("h", text)``,
    ``("table", (header, rows))``, ``("p", text)``. Enough for the reports PMRS writes."""
    blocks: list[tuple[str, object]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("#"):
            blocks.append(("h", line.lstrip("#").strip()))
        elif line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            cells = lambda s: [c.strip() for c in s.strip().strip("|").split("|")]  # noqa: E731
            header, rows, i = cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            blocks.append(("table", (header, rows)))
            continue
        elif line:
            blocks.append(("p", line))
        i += 1
    return blocks


# -- errors -----------------------------------------------------------------------------------

def _message(exc: PMRSError) -> str:
    return HINTS.get(exc.code) or exc.message


def _wants_fragment(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/fragment/"))


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    web = _web(request)
    name = "_error.html" if _wants_fragment(request) else "error.html"
    return web.page(request, name, status, status=status, message=message)


async def on_pmrs_error(request: Request, exc: PMRSError) -> Response:
    return _error(request, HTTP_STATUS.get(exc.code, 500), _message(exc))


async def on_bad_query(request: Request, exc: BadQuery) -> Response:
    return _error(request, 400, str(exc))


async def on_http(request: Request, exc: HTTPException) -> Response:
    message = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else "no such page"
    return _error(request, exc.status_code, message)


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return _error(request, 500, "something went wrong on this page (the web app's log has the details)")


def create_app(workdir, target: str, *, token: str | None = None, timeout_s: float = WebConfig.timeout_s,
               retries: int = WebConfig.retries, tls: bool = False, ca_file: str | None = None,
               cert_file: str | None = None, key_file: str | None = None,
               upload_timeout_s: float = WebConfig.upload_timeout_s, bind_host: str = "127.0.0.1",
               hosts: Sequence[str] = ()) -> Starlette:
    """The application: talks to ``pmrs-server`` at ``target`` with ``token`` for writes (TLS
    settings as :func:`pmrs.connect`'s). It answers only requests naming one of its hosts
    (loopback names, ``bind_host`` and ``hosts``) and takes writes only from its own pages
    (:mod:`pmrs.web.guard`)."""
    conn = {"token": token or "", "tls": tls, "ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    client = connect(target, timeout=timeout_s, retries=retries, **conn)
    uploader = connect(target, timeout=upload_timeout_s, retries=retries, **conn)
    routes = [
        Route("/", index),
        Route("/fragment/recommend", fragment),
        Route("/favicon.ico", favicon),
        Route("/api/search", api_search),
        Route("/api/users", api_users),
        Route("/api/play", api_play, methods=["POST"]),
        Route("/api/feedback", api_feedback, methods=["POST"]),
        Route("/api/radio", api_radio, methods=["POST"]),
        Route("/radio", radio_page),
        Route("/songs/{song_id}", song_page),
        Route("/users/{user_id}", user_page),
        Route("/artists/{name:path}", artist_page),
        Route("/tags/{tag:path}", tag_page),
        Route("/media/{song_id}", media),
        Route("/upload", upload_form, methods=["GET"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/map", map_page),
        Route("/lab", lab),
        Route("/lab/figures.json", lab_figures),
        Route("/lab/files/{path:path}", report_file),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {PMRSError: on_pmrs_error, BadQuery: on_bad_query, HTTPException: on_http, Exception: on_crash}
    web = Web(workdir, client, can_write=bool(token), uploader=uploader)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            web.data.close()
            web.pool.shutdown(wait=False)
            client.close()
            uploader.close()

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan,
                    middleware=[Middleware(Measured, metrics=web.metrics),
                                Middleware(SameOriginGuard, hosts=allowed_hosts(bind_host, hosts))])
    app.state.web = web
    return app
