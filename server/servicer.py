"""The ``pmrs.v1.Recommender`` gRPC service over the :class:`pmrs.Recommender` a
:class:`BundleHolder` holds.

The servicer translates messages to ``pmrs.Recommender`` calls and errors to status codes; the
decisions (defaults, precomputed lists or computing, blending) are the Recommender's. Every call
takes a reference to the current recommender when it starts and finishes on it, even when the
watcher swaps in a newer bundle meanwhile; a replaced one is closed when the last call using it
returns.

Status codes (proto/pmrs/v1/recommender.proto): NOT_FOUND for an unknown user or song (or a song
without the vector the mode needs), INVALID_ARGUMENT for a setting or filter out of range or a
request without user and seeds, UNAVAILABLE while no bundle is loaded, DEADLINE_EXCEEDED when the
call's deadline passes before the answer is ready, INTERNAL (logged) for anything else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from typing import Iterator

import grpc

from pmrs.errors import AlreadyExists, InvalidArgument, LogUnavailable, NotFound, ReadOnly
from pmrs.live.songs import ClipTooLarge
from pmrs.recommender import CallHooks, Filters, Recommendations, Recommender
from pmrs.remote import feedback_action, history_message
from pmrs.serving.contract import ACOUSTIC, COLLABORATIVE, METADATA, NEIGHBOURS
from pmrs.serving.recommend import MIXED, check_unit
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name  # "pmrs.v1.Recommender"

_MODES = {pb.SIMILARITY_MODE_UNSPECIFIED: MIXED, pb.SIMILARITY_MODE_MIXED: MIXED,
          pb.SIMILARITY_MODE_COLLABORATIVE: COLLABORATIVE, pb.SIMILARITY_MODE_ACOUSTIC: ACOUSTIC,
          pb.SIMILARITY_MODE_METADATA: METADATA, pb.SIMILARITY_MODE_NEIGHBOURS: NEIGHBOURS}
#: ScoredSong.source (the proto's two-source enum) for the sources a song came from.
_LEGACY_SOURCE = {(COLLABORATIVE,): pb.SOURCE_COLLABORATIVE, (ACOUSTIC,): pb.SOURCE_ACOUSTIC,
                  (COLLABORATIVE, ACOUSTIC): pb.SOURCE_BOTH}


class _Entry:
    __slots__ = ("bundle", "users", "retired")

    def __init__(self, bundle):
        self.bundle, self.users, self.retired = bundle, 0, False


class BundleHolder:
    """The recommender being served (a :class:`pmrs.Recommender`, or anything with ``version``
    and ``close()``), swapped atomically; thread-safe.

    ``use()`` lends the current one (``None`` when none is loaded) for the duration of a call;
    ``swap(new)`` makes a new one current. A replaced one is closed as soon as no call uses it.
    """

    def __init__(self, bundle=None):
        self._lock = threading.Lock()
        self._current: _Entry | None = _Entry(bundle) if bundle is not None else None

    @property
    def bundle(self):
        """The current bundle (not lent: only for looking at it, e.g. its version)."""
        entry = self._current
        return entry.bundle if entry else None

    @property
    def version(self) -> str | None:
        b = self.bundle
        return b.version if b is not None else None

    @contextlib.contextmanager
    def use(self) -> Iterator:
        with self._lock:
            entry = self._current
            if entry is not None:
                entry.users += 1
        try:
            yield entry.bundle if entry is not None else None
        finally:
            if entry is not None:
                with self._lock:
                    entry.users -= 1
                    close = entry.retired and entry.users == 0
                if close:
                    _close(entry.bundle)

    def swap(self, bundle) -> None:
        """Serve ``bundle`` from now on (``None``: serve nothing); close the old one when unused."""
        with self._lock:
            old, self._current = self._current, (_Entry(bundle) if bundle is not None else None)
            close = False
            if old is not None:
                old.retired = True
                close = old.users == 0
        if close:
            _close(old.bundle)

    def close(self) -> None:
        self.swap(None)


def _close(bundle) -> None:
    try:
        bundle.close()
        log.info("closed bundle %s", bundle.version)
    except Exception:  # closing must never fail a call
        log.exception("closing bundle %s failed", getattr(bundle, "version", "?"))


class NeedsWorker(Exception):
    """Raised by a call tried on the transport's event loop (its context's ``on_loop`` is true)
    at the point where it would start computing: the transport runs it again in a worker thread.
    A call answered from the default lists never gets there, so it is answered on the loop."""


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


#: The library's errors a call answers with the status each names in its ``code`` (``pmrs.errors``;
#: ``AlreadyExists`` and ``ClipTooLarge`` are ``InvalidArgument``\ s with codes of their own). Any
#: other exception is a bug: INTERNAL, logged.
_ANSWERED = (AlreadyExists, ClipTooLarge, ReadOnly, InvalidArgument, NotFound)


def _rpc(method):
    """Map exceptions to status codes; ``context.abort`` is called outside every ``try``."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except NeedsWorker:
            raise
        except _Abort as exc:
            code, message = exc.code, exc.message
        except LogUnavailable as exc:
            code, message = grpc.StatusCode[exc.code], f"the write was not recorded: {exc}; retry later"
        except _ANSWERED as exc:
            code, message = grpc.StatusCode[exc.code], str(exc)
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        context.abort(code, message)

    return wrapper


class _Hooks(CallHooks):
    """A call's deadline and the server's compute slot, for :class:`pmrs.Recommender`."""

    __slots__ = ("context", "gate", "metrics")

    def __init__(self, context, gate, metrics=None):
        self.context, self.gate, self.metrics = context, gate, metrics

    def check(self, stage: str) -> None:
        remaining = self.context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"the deadline passed {stage}")

    @contextlib.contextmanager
    def slot(self):
        """A compute slot, waited for no longer than the call's deadline."""
        if getattr(self.context, "on_loop", False):
            raise NeedsWorker
        gate = self.gate
        if gate is None:
            yield
            return
        remaining = self.context.time_remaining()
        queue = self.metrics.queue if self.metrics is not None else None
        if queue is not None:
            queue.inc()
        try:
            # (without a deadline grpc reports a remaining time too large for a lock timeout)
            got = (gate.acquire() if remaining is None or remaining >= threading.TIMEOUT_MAX
                   else gate.acquire(timeout=max(remaining, 0.0)))
        finally:
            if queue is not None:
                queue.dec()
        if not got:
            raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                         "the deadline passed while the call waited for a compute slot")
        try:
            yield
        finally:
            gate.release()


def _filters(request) -> Filters | None:
    if not request.HasField("filters"):  # (most requests: building a Filters costs ~10 us)
        return None
    msg = request.filters
    return Filters(genres=tuple(msg.genres), min_year=msg.min_year, max_year=msg.max_year,
                   exclude_artists=tuple(msg.exclude_artists))


def _shares(request, rec: Recommender) -> dict[str, float] | None:
    shares = dict(request.shares)
    if request.HasField("acoustic_share"):
        if ACOUSTIC in shares:
            raise InvalidArgument("send acoustic_share or shares[\"acoustic\"], not both")
        check_unit("acoustic_share", request.acoustic_share)
        if ACOUSTIC in rec.sources:  # (the older field asks nothing of a bundle without audio)
            shares[ACOUSTIC] = request.acoustic_share
    return shares or None


def _song(s) -> pb.Song:
    return pb.Song(song_id=s.song_id, title=s.title, artist=s.artist, release=s.release, year=s.year,
                   genre=s.genre, has_plays=s.has_plays, has_audio=s.has_audio, sources=s.sources,
                   genre_scores=[pb.GenreScore(genre=g, confidence=c) for g, c in s.genre_scores],
                   tags=[pb.Tag(tag=t, weight=w) for t, w in s.tags], genre_warning=s.genre_warning,
                   acoustic_warning=s.acoustic_warning)


def _scored(songs, into) -> None:
    """Append ``songs`` (``pmrs.results.ScoredSong``) to the repeated ``ScoredSong`` field
    ``into``, their reasons too; each message is built in place (``add``), not built and then
    copied in, which halves the time of an explained answer's messages."""
    for s in songs:
        m = into.add(song_id=s.song_id, title=s.title, artist=s.artist, genre=s.genre, year=s.year,
                     score=s.score, source=_LEGACY_SOURCE.get(s.sources, pb.SOURCE_UNSPECIFIED), sources=s.sources)
        for r in s.reasons:
            reason = m.reasons.add(source=r.source, rank=r.rank, share=r.share, text=r.text, shared=r.shared)
            for e in r.evidence:
                reason.evidence.add(song_id=e.song_id, title=e.title, artist=e.artist, weight=e.weight)


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """``pmrs.v1.Recommender`` over ``holder``'s current :class:`pmrs.Recommender`.

    ``compute_slots``: calls computing an answer at once (0: no limit); a lookup in the default
    lists takes none.
    """

    def __init__(self, holder: BundleHolder, compute_slots: int = 1, accepts_writes: bool = False,
                 metrics=None):
        self.holder = holder
        self.metrics = metrics   # (server.metrics.ServerMetrics: the compute-slot queue's depth)
        self.accepts_writes = accepts_writes
        self.identity = ""   # "host:port pid N", set once the port is bound
        self.metrics_url = ""   # where the metrics are scraped, set once their port is bound
        if compute_slots < 0:
            raise ValueError(f"compute_slots must be >= 0 (0: no limit), got {compute_slots}")
        # one slot: a plain lock (its acquire is C code; a semaphore's runs Python on each call)
        self._gate = (None if not compute_slots else threading.Lock() if compute_slots == 1
                      else threading.BoundedSemaphore(compute_slots))

    @contextlib.contextmanager
    def _recommender(self, context) -> Iterator[tuple[Recommender, _Hooks]]:
        """The current recommender for one call (UNAVAILABLE while none is loaded) and the call's
        hooks."""
        hooks = _Hooks(context, self._gate, self.metrics)
        hooks.check("before the call started")
        with self.holder.use() as rec:
            if rec is None:
                raise _Abort(grpc.StatusCode.UNAVAILABLE,
                             "no bundle is loaded yet (run `indexer build`); retry later")
            yield rec, hooks

    @_rpc
    def Recommend(self, request: pb.RecommendRequest, context) -> pb.RecommendResponse:
        with self._recommender(context) as (rec, hooks):
            r: Recommendations = rec.recommend(
                request.user_id, request.seed_song_ids, request.k, _shares(request, rec),
                request.diversity if request.HasField("diversity") else None, _filters(request),
                request.include_played, request.explain, hooks=hooks)
            out = pb.RecommendResponse(bundle_version=r.bundle_version, folded_in=r.folded_in,
                                       precomputed=r.precomputed)
            _scored(r.songs, out.songs)
            return out

    @_rpc
    def SimilarSongs(self, request: pb.SimilarSongsRequest, context) -> pb.SimilarSongsResponse:
        with self._recommender(context) as (rec, hooks):
            if request.source:
                mode = request.source
            elif request.mode in _MODES:
                mode = _MODES[request.mode]
            else:
                raise InvalidArgument(f"unknown similarity mode {request.mode}")
            r = rec.similar_songs(request.song_id, request.k, mode, _shares(request, rec),
                                  request.diversity if request.HasField("diversity") else None,
                                  _filters(request), request.explain, hooks=hooks)
            out = pb.SimilarSongsResponse(bundle_version=r.bundle_version, precomputed=r.precomputed)
            _scored(r.songs, out.songs)
            return out

    @_rpc
    def RecommendByGenre(self, request: pb.RecommendByGenreRequest, context) -> pb.RecommendByGenreResponse:
        with self._recommender(context) as (rec, hooks):
            r = rec.recommend_by_genre(request.user_id, request.seed_song_ids, request.k, request.genres,
                                       request.include_played, hooks=hooks)
            out = pb.RecommendByGenreResponse(bundle_version=r.bundle_version, folded_in=r.folded_in)
            for g in r.genres:
                _scored(g.songs, out.genres.add(genre=g.genre, confidence=g.confidence,
                                                song_confidences=g.genre_confidences).songs)
            return out

    @_rpc
    def Radio(self, request: pb.RadioRequest, context) -> pb.RadioResponse:
        with self._recommender(context) as (rec, hooks):
            r = rec.radio(request.song_id, request.artist, request.seed_song_ids, request.user_id, request.k,
                          request.token, request.artist_gap if request.HasField("artist_gap") else None,
                          request.diversity if request.HasField("diversity") else None,
                          [(e.song_id, feedback_action(e.action)) for e in request.session], request.explain,
                          hooks=hooks)
            out = pb.RadioResponse(token=r.token, bundle_version=r.bundle_version, relaxed=r.relaxed)
            _scored(r.songs, out.songs)
            return out

    @_rpc
    def GetSong(self, request: pb.GetSongRequest, context) -> pb.GetSongResponse:
        with self._recommender(context) as (rec, _):
            return pb.GetSongResponse(song=_song(rec.song(request.song_id)))

    @_rpc
    def GetHistory(self, request: pb.GetHistoryRequest, context) -> pb.GetHistoryResponse:
        with self._recommender(context) as (rec, _):
            return history_message(rec.history(request.user_id, limit=request.limit or 50))

    @_rpc
    def RecordPlays(self, request: pb.RecordPlaysRequest, context) -> pb.RecordPlaysResponse:
        with self._recommender(context) as (rec, hooks):
            hooks.check("before the write")
            done = rec.record_plays(request.user_id, [(p.song_id, p.count) for p in request.plays],
                                    request.request_id or None)
            return pb.RecordPlaysResponse(sequence=done.seq, duplicate=done.duplicate)

    @_rpc
    def RecordFeedback(self, request: pb.RecordFeedbackRequest, context) -> pb.RecordFeedbackResponse:
        with self._recommender(context) as (rec, hooks):
            hooks.check("before the write")
            done = rec.record_feedback(request.user_id, request.song_id, feedback_action(request.action),
                                       request.request_id or None)
            return pb.RecordFeedbackResponse(sequence=done.seq, duplicate=done.duplicate)

    @_rpc
    def AddSong(self, request: pb.AddSongRequest, context) -> pb.AddSongResponse:
        with self._recommender(context) as (rec, hooks):
            hooks.check("before the write")
            added = rec.add_song(request.song_id, title=request.title, artist=request.artist,
                                release=request.release, year=request.year, genre=request.genre,
                                tags=list(request.tags), audio=request.audio if request.HasField("audio") else None,
                                filename=request.audio_filename or "clip",
                                request_id=request.request_id or None)
            return pb.AddSongResponse(song=_song(added.song), sequence=added.seq, duplicate=added.duplicate)

    @_rpc
    def GetBundleInfo(self, request: pb.GetBundleInfoRequest, context) -> pb.GetBundleInfoResponse:
        with self._recommender(context) as (rec, _):
            info = rec.info()
            return pb.GetBundleInfoResponse(
                version=info.version, created_at=info.created_at, users=info.users, songs=info.songs,
                songs_with_plays=info.songs_with_plays, songs_with_audio=info.songs_with_audio,
                indexes=[pb.IndexInfo(name=s.name, spec=s.spec, vectors=s.vectors, dimension=s.dimension,
                                      search_params={str(a): str(b) for a, b in s.search_params.items()},
                                      recall_at_10=s.recall_at_10, covers_cold=s.covers_cold, space=s.space,
                                      default_share=s.default_share)
                         for s in info.sources],
                source_runs=info.source_runs,
                default_lists=[pb.DefaultListInfo(kind=d.kind, k=d.k, acoustic_share=d.shares.get(ACOUSTIC, 0.0),
                                                  diversity=d.diversity, shares=d.shares)
                               for d in info.default_lists],
                format_version=info.format_version, live_sequence=info.live_seq,
                accepts_writes=self.accepts_writes and info.accepts_writes, server=self.identity,
                metrics_url=self.metrics_url,
                defaults=pb.Defaults(k=info.defaults.k, shares=info.defaults.shares, diversity=info.defaults.diversity,
                                     similar_diversity=info.defaults.similar_diversity))

    def Ping(self, request: pb.PingRequest, context) -> pb.PingResponse:
        return pb.PingResponse()
