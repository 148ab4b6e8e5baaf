"""The ListenBrainz-compatible HTTP API (Starlette): players scrobble to PMRS and it learns live.

Routes (the ListenBrainz ones answer as ListenBrainz does: JSON, errors ``{"code", "error"}``):

- ``POST /1/submit-listens`` (``Authorization: Token <token>``): ``single``, ``import`` and
  ``playing_now`` submissions, checked whole first (:mod:`pmrs.listenbrainz.payload`: 400 with
  ListenBrainz's message, nothing written), then recorded (:mod:`pmrs.listenbrainz.record`);
  ``{"status": "ok"}``. No or a bad ``Authorization`` header, an unknown or revoked token: 401.
  The body is read up to :data:`~pmrs.listenbrainz.payload.MAX_LISTEN_PAYLOAD_SIZE` bytes and a
  longer one refused with ListenBrainz's 400 ("Payload too large"), without reading the rest.
- ``GET /1/validate-token``: ``{"code": 200, "message": "Token valid.", "valid": true,
  "user_name": ...}``, or ``"Token invalid."`` / ``"valid": false`` (still 200, as ListenBrainz
  answers); no token at all: 400. The token comes from the ``Authorization`` header, else the
  ``token`` query parameter (ListenBrainz's older form).
- ``GET /1/cf/recommendation/user/<user_name>/recording?count=&offset=``: the user's
  recommendations in ListenBrainz's shape, ``{"payload": {"mbids": [{"recording_mbid", "score"}],
  "user_name", "count", "offset", "total_mbid_count", "last_updated"}}``; a song without a known
  MBID has ``"recording_mbid": null``; each entry also names the song (``recording_name``,
  ``artist_name``, ``song_id``). A user PMRS does not know: 404.
- ``GET /pmrs/v1/recommendations/<user_id>?k=&explain=``: PMRS's own answer: songs with titles,
  artists, genres, years, scores, the sources that found them and, unless ``explain=0``, the
  reasons each source gives (:mod:`pmrs.serving.explain`), the bundle and the write log position.

Reads are open, as ListenBrainz's are (bind to loopback, or put the server behind TLS and a
proxy that restricts them). Cross-site browser requests cannot write: a write needs the token,
which a page elsewhere does not have, and any write that carries ``Origin`` or a
``Sec-Fetch-Site`` other than ``none`` (the marks of a browser; players and client libraries send
neither) is refused with 403 before its body is read. No CORS headers are sent, so other sites'
scripts cannot read the answers either.

Every answer carries ListenBrainz's rate-limit headers, and a client past its limit is answered
429 (:mod:`pmrs.listenbrainz.ratelimit`).
"""

from __future__ import annotations

import logging
import threading
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import InvalidArgument, NotFound, PMRSError, Unavailable
from ..serving.contract import ContractError, read_current
from .payload import MAX_LISTEN_PAYLOAD_SIZE, BadListens, parse_submission
from .ratelimit import RateLimiter, RateLimits
from .record import ListenRecorder
from .tokens import TokenStore

log = logging.getLogger("pmrs.listenbrainz")
#: ListenBrainz's default and largest ``count`` of recommendations.
DEFAULT_COUNT = 25
MAX_COUNT = 1000


def error(status: int, message: str) -> JSONResponse:
    """A ListenBrainz error answer: ``{"code": status, "error": message}``."""
    return JSONResponse({"code": status, "error": message}, status_code=status)


class BrowserGuard:
    """ASGI middleware: a write (POST) that carries the marks of a browser (``Origin``, or
    ``Sec-Fetch-Site`` other than ``none``) is refused with 403 (module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            site = headers.get("sec-fetch-site")
            if "origin" in headers or (site is not None and site != "none"):
                why = f"origin {headers['origin']}" if "origin" in headers else f"a {site} context"
                resp = error(403, f"Requests from web pages are refused (this one came from {why}); "
                                  "players and client libraries send no Origin header.")
                return await resp(scope, receive, send)
        return await self.app(scope, receive, send)


_UNSET = object()


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "token" and value.strip() else ""


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it is longer than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


#: The values a yes/no query parameter takes.
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _reason(r) -> dict:
    """One reason (:class:`pmrs.results.Reason`) as JSON."""
    return {"source": r.source, "rank": r.rank, "share": r.share, "text": r.text,
            "evidence": [{"song_id": e.song_id, "title": e.title, "artist": e.artist, "weight": e.weight}
                         for e in r.evidence], "shared": list(r.shared)}


class Served:
    """The live recommender the app answers from, and its listen recorder. With ``workdir``, it
    follows rebuilds: at most every ``poll_seconds``, a request looks at ``bundles/CURRENT``, and
    when a rebuild switched it, the new bundle is opened (with the writes it does not hold yet
    replayed) and answers from then on. A bundle that cannot be opened is logged and the one
    served stays, as in ``pmrs-server``."""

    def __init__(self, recommender, workdir=None, poll_seconds: float = 2.0):
        self.recommender, self.recorder = recommender, ListenRecorder(recommender)
        self.workdir, self.poll_seconds = workdir, poll_seconds
        self._seen = read_current(workdir) if workdir is not None else None
        self._looked = time.monotonic()
        self._lock = threading.Lock()

    def get(self) -> tuple:
        """``(recommender, recorder)`` to answer one request with."""
        if self.workdir is not None and time.monotonic() - self._looked >= self.poll_seconds:
            with self._lock:
                if time.monotonic() - self._looked >= self.poll_seconds:
                    self._follow()
        return self.recommender, self.recorder

    def _follow(self) -> None:
        import pmrs

        self._looked = time.monotonic()
        name = None
        try:
            name = read_current(self.workdir)
            if name is None or name == self._seen:
                return
            rec = pmrs.Recommender.open(self.workdir, live=True)
        except (PMRSError, ContractError, OSError, ValueError) as exc:
            log.warning("bundle %s not opened, still serving %s: %s", name, self.recommender.version, exc)
            return
        recorder = ListenRecorder(rec)
        recorder.warm_up()
        log.info("now serving bundle %s (was %s)", rec.version, self.recommender.version)
        self.recommender, self.recorder, self._seen = rec, recorder, name


def create_app(recommender, tokens: TokenStore, workdir=None, limits: RateLimits | None = None,
               clock=None) -> Starlette:
    """The app over a live ``recommender`` (:meth:`pmrs.Recommender.open` with ``live=True``)
    and the work directory's ``tokens``; with ``workdir``, the app follows its rebuilds
    (:class:`Served`). ``limits``: the rate limits every request counts against
    (:mod:`pmrs.listenbrainz.ratelimit`; ``None``: the defaults); ``clock``: their clock (tests)."""
    served = Served(recommender, workdir)

    def token_user(request: Request) -> str | None:
        """The user of the request's ``Authorization`` token, ``None`` without a valid one;
        looked up once per request (the rate limiter asks first, the route after it)."""
        user = getattr(request.state, "token_user", _UNSET)
        if user is _UNSET:
            token = _token_of(request)
            user = request.state.token_user = tokens.user_of(token) if token else None
        return user

    def auth(request: Request) -> str | JSONResponse:
        token = _token_of(request)
        if token is None:
            return error(401, "You need to provide an Authorization header.")
        if not token:
            return error(401, "Provided Authorization header is invalid.")
        user = token_user(request)
        return user if user is not None else error(401, "Invalid authorization token.")

    async def submit_listens(request: Request):
        user = auth(request)
        if isinstance(user, JSONResponse):
            return user
        raw = await _body(request, MAX_LISTEN_PAYLOAD_SIZE)
        if raw is None:
            return error(400, f"Payload too large. Payload cannot exceed {MAX_LISTEN_PAYLOAD_SIZE} bytes")
        try:
            listen_type, listens = parse_submission(raw)
        except BadListens as exc:
            return error(exc.status, exc.message)
        try:
            done = await run_in_threadpool(served.get()[1].record, user, listen_type, listens)
        except Unavailable as exc:
            log.warning("listens of %s not recorded: %s", user, exc)
            return error(503, "Cannot submit listens right now, please try again later.")
        except InvalidArgument as exc:
            return error(400, str(exc))
        log.debug("%s: %d listens written, %d already there", user, done.written, done.duplicates)
        return JSONResponse({"status": "ok"})

    async def validate_token(request: Request):
        token = _token_of(request) or request.query_params.get("token", "")
        if not token:
            return error(400, "You need to provide an Authorization token.")
        user = tokens.user_of(token)
        if user is None:
            return JSONResponse({"code": 200, "message": "Token invalid.", "valid": False})
        return JSONResponse({"code": 200, "message": "Token valid.", "valid": True, "user_name": user})

    def _int_param(request: Request, name: str, default: int) -> int:
        value = request.query_params.get(name)
        if value is None:
            return default
        if not value.isdigit():
            raise BadListens(f"'{name}' should be a non-negative integer")
        return int(value)

    def _recommend(user_name: str, k: int | None, explain: bool = False):
        """``(answer, recorder, live_seq)`` from the recommender served now."""
        recommender, recorder = served.get()
        recommender.refresh()
        live = recommender.live
        if not ((live is not None and live.has_user(user_name)) or recommender.bundle.user_row(user_name) is not None):
            raise NotFound(f"Cannot find user: {user_name}")
        return recommender.recommend(user_name, k=k, explain=explain), recorder, recommender.live_seq

    async def cf_recordings(request: Request):
        user_name = request.path_params["user_name"]
        try:
            count = min(_int_param(request, "count", DEFAULT_COUNT), MAX_COUNT)
            offset = _int_param(request, "offset", 0)
        except BadListens as exc:
            return error(400, exc.message)
        if count == 0:
            return error(400, "'count' should be a positive integer")
        try:
            recs, recorder, _ = await run_in_threadpool(_recommend, user_name, min(offset + count, MAX_COUNT))
        except NotFound as exc:
            return error(404, str(exc))
        except PMRSError as exc:
            return error(400, str(exc))
        page = recs.songs[offset:offset + count]
        mbids = recorder.recording_mbids([s.song_id for s in page])
        return JSONResponse({"payload": {
            "mbids": [{"recording_mbid": m, "score": float(s.score), "recording_name": s.title,
                       "artist_name": s.artist, "song_id": s.song_id} for s, m in zip(page, mbids)],
            "user_name": user_name, "count": len(page), "offset": offset,
            "total_mbid_count": len(recs.songs), "last_updated": int(time.time())}})

    async def pmrs_recommendations(request: Request):
        user_id = request.path_params["user_id"]
        try:
            k = _int_param(request, "k", 0) or None
            explain = _flag(request, "explain", True)
            recs, recorder, live_seq = await run_in_threadpool(_recommend, user_id, k, explain)
        except BadListens as exc:
            return error(400, exc.message)
        except NotFound as exc:
            return error(404, str(exc))
        except PMRSError as exc:
            return error(400, str(exc))
        return JSONResponse({
            "user_id": user_id, "bundle_version": recs.bundle_version, "live_seq": live_seq,
            "precomputed": recs.precomputed,
            "songs": [{"song_id": s.song_id, "title": s.title, "artist": s.artist, "genre": s.genre,
                       "year": s.year, "score": float(s.score), "sources": list(s.sources),
                       "recording_mbid": m, "reasons": [_reason(r) for r in s.reasons]}
                      for s, m in zip(recs.songs, recorder.recording_mbids([s.song_id for s in recs.songs]))]})

    def _flag(request: Request, name: str, default: bool) -> bool:
        value = request.query_params.get(name)
        if value is None:
            return default
        if value.lower() not in FLAGS:
            raise BadListens(f"'{name}' should be one of {', '.join(sorted(FLAGS))}")
        return FLAGS[value.lower()]

    app = Starlette(routes=[
        Route("/1/submit-listens", submit_listens, methods=["POST"]),
        Route("/1/validate-token", validate_token, methods=["GET"]),
        Route("/1/cf/recommendation/user/{user_name}/recording", cf_recordings, methods=["GET"]),
        Route("/pmrs/v1/recommendations/{user_id}", pmrs_recommendations, methods=["GET"]),
    ])
    app.add_middleware(BrowserGuard)
    app.add_middleware(RateLimiter, limits=limits or RateLimits(), user_of=token_user,
                       clock=clock)   # (outermost: every answer)
    app.state.served = served
    return app
