"""The ``pmrs.v1.Recommender`` gRPC service over the bundle a :class:`BundleHolder` holds.

The servicer translates messages and errors; the recommendation logic is
``pmrs.serving.recommend``. Every call takes a reference to the current bundle when it starts and
finishes on that bundle, even when the watcher swaps in a newer one meanwhile; a replaced bundle is
closed when the last call using it returns.

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
import numpy as np

from pmrs.serving.recommend import (ACOUSTIC, COLLABORATIVE, MAX_SEEDS, MIXED, Filters, InvalidArgument,
                                    Item, NotFound, check_unit, listed_items, lists_answer,
                                    recommend_for_vector, resolve_k, similar_songs, user_query)
from pmrs.text import quote_prefix
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name  # "pmrs.v1.Recommender"

_MODES = {pb.SIMILARITY_MODE_UNSPECIFIED: MIXED, pb.SIMILARITY_MODE_MIXED: MIXED,
          pb.SIMILARITY_MODE_COLLABORATIVE: COLLABORATIVE, pb.SIMILARITY_MODE_ACOUSTIC: ACOUSTIC}


class _Entry:
    __slots__ = ("bundle", "users", "retired")

    def __init__(self, bundle):
        self.bundle, self.users, self.retired = bundle, 0, False


class BundleHolder:
    """The bundle being served, swapped atomically; thread-safe.

    ``use()`` lends the current bundle (``None`` when none is loaded) for the duration of a call;
    ``swap(bundle)`` makes a new one current. A replaced bundle is closed as soon as no call uses it.
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


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _rpc(method):
    """Map exceptions to status codes; ``context.abort`` is called outside every ``try``."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except _Abort as exc:
            code, message = exc.code, exc.message
        except InvalidArgument as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except NotFound as exc:
            code, message = grpc.StatusCode.NOT_FOUND, str(exc)
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        context.abort(code, message)

    return wrapper


def _check_deadline(context, stage: str) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"the deadline passed {stage}")


def _widening_check(context):
    return lambda: _check_deadline(context, "while the search was widened to find enough songs")


def _filters(msg: pb.Filters) -> Filters:
    return Filters(genres=tuple(msg.genres), min_year=msg.min_year, max_year=msg.max_year,
                   exclude_artists=tuple(msg.exclude_artists))


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """``pmrs.v1.Recommender`` over ``holder``'s current bundle.

    ``default_acoustic_share`` and ``default_diversity`` apply to Recommend requests that leave
    those fields unset (SimilarSongs uses the share default too, and no re-ranking by default).
    """

    def __init__(self, holder: BundleHolder, default_acoustic_share: float = 0.2,
                 default_diversity: float = 0.0, compute_slots: int = 1):
        self.holder = holder
        self.default_acoustic_share = check_unit("default acoustic_share", default_acoustic_share)
        self.default_diversity = check_unit("default diversity", default_diversity)
        if compute_slots < 0:
            raise ValueError(f"compute_slots must be >= 0 (0: no limit), got {compute_slots}")
        # one slot: a plain lock (its acquire is C code; a semaphore's runs Python on each call)
        self._gate = (None if not compute_slots else threading.Lock() if compute_slots == 1
                      else threading.BoundedSemaphore(compute_slots))

    @contextlib.contextmanager
    def _bundle(self, context):
        """The current bundle for one call (UNAVAILABLE while none is loaded)."""
        _check_deadline(context, "before the call started")
        with self.holder.use() as bundle:
            if bundle is None:
                raise _Abort(grpc.StatusCode.UNAVAILABLE,
                             "no bundle is loaded yet (run `indexer build`); retry later")
            yield bundle

    @contextlib.contextmanager
    def _slot(self, context):
        """A compute slot, waited for no longer than the call's deadline."""
        gate = self._gate
        if gate is None:
            yield
            return
        remaining = context.time_remaining()
        # (without a deadline grpc reports a remaining time too large for a lock timeout)
        got = (gate.acquire() if remaining is None or remaining >= threading.TIMEOUT_MAX
               else gate.acquire(timeout=max(remaining, 0.0)))
        if not got:
            raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                         "the deadline passed while the call waited for a compute slot")
        try:
            yield
        finally:
            gate.release()

    def _share(self, request) -> float:
        if request.HasField("acoustic_share"):
            return check_unit("acoustic_share", request.acoustic_share)
        return self.default_acoustic_share

    def _scored(self, bundle, items: list[Item]) -> list[pb.ScoredSong]:
        songs = bundle.songs([it.song_row for it in items], copy=False) if items else []
        # (every entry has every field, "" or 0 when unknown: Bundle.songs)
        return [pb.ScoredSong(song_id=s["song_id"], title=s["title"], artist=s["artist"], genre=s["genre"],
                              year=int(s["year"] or 0), score=it.score, source=int(it.source))
                for it, s in zip(items, songs)]

    @_rpc
    def Recommend(self, request: pb.RecommendRequest, context) -> pb.RecommendResponse:
        with self._bundle(context) as bundle:
            k = resolve_k(request.k)
            share = self._share(request)
            diversity = (check_unit("diversity", request.diversity) if request.HasField("diversity")
                         else self.default_diversity)
            filters = _filters(request.filters)
            if (request.user_id and not request.include_played and not filters.active
                    and len(request.seed_song_ids) <= MAX_SEEDS
                    and lists_answer(bundle.lists.get("recommend"), k, share, diversity)):
                row = bundle.user_row(request.user_id)
                if row is not None:  # the default request of a known user: computed at build time
                    items = listed_items(bundle.lists["recommend"], row)
                    return pb.RecommendResponse(songs=self._scored(bundle, items), bundle_version=bundle.version,
                                                folded_in=False)
            with self._slot(context):
                query = user_query(bundle, request.user_id, request.seed_song_ids, request.include_played)
                _check_deadline(context, "before the search")
                items = recommend_for_vector(bundle, query.vector, k, share, diversity, query.exclude_rows,
                                             filters, before_widening=_widening_check(context))
            _check_deadline(context, "before the answer was ready")
            return pb.RecommendResponse(songs=self._scored(bundle, items), bundle_version=bundle.version,
                                        folded_in=query.folded_in)

    @_rpc
    def SimilarSongs(self, request: pb.SimilarSongsRequest, context) -> pb.SimilarSongsResponse:
        with self._bundle(context) as bundle:
            k = resolve_k(request.k)
            if request.mode not in _MODES:
                raise InvalidArgument(f"unknown similarity mode {request.mode}")
            mode = _MODES[request.mode]
            share = self._share(request)
            diversity = check_unit("diversity", request.diversity) if request.HasField("diversity") else 0.0
            filters = _filters(request.filters)
            row = self._song_row(bundle, request.song_id)
            lists = bundle.lists.get("similar")
            if mode == MIXED and not filters.active and lists_answer(lists, k, share, diversity):
                items = listed_items(lists, row)
                if items:  # (a song without vectors has none: the computed path says why)
                    return pb.SimilarSongsResponse(songs=self._scored(bundle, items),
                                                   bundle_version=bundle.version)
            with self._slot(context):
                _check_deadline(context, "before the search")
                try:
                    items = similar_songs(bundle, row, k, mode, share, diversity, filters,
                                          before_widening=_widening_check(context))
                except NotFound as exc:
                    raise NotFound(f"song {quote_prefix(request.song_id)}: {exc}") from None
            _check_deadline(context, "before the answer was ready")
            return pb.SimilarSongsResponse(songs=self._scored(bundle, items), bundle_version=bundle.version)

    @staticmethod
    def _song_row(bundle, song_id: str) -> int:
        if not song_id:
            raise InvalidArgument("song_id is required")
        row = bundle.song_row(song_id)
        if row is None:
            raise NotFound(f"unknown song {quote_prefix(song_id)}")
        return int(row)

    @_rpc
    def GetSong(self, request: pb.GetSongRequest, context) -> pb.GetSongResponse:
        with self._bundle(context) as bundle:
            row = self._song_row(bundle, request.song_id)
            s = bundle.songs([row])[0] or {}
            has_audio = bundle.acoustic_vector(row) is not None
            scores = []
            probs = bundle.genre_probs(row) if has_audio else None
            genres = bundle.manifest.get("genres") or []
            if probs is not None and len(genres) == len(probs):
                order = np.argsort(-np.asarray(probs), kind="stable")
                scores = [pb.GenreScore(genre=genres[i], confidence=float(probs[i])) for i in order]
            song = pb.Song(song_id=request.song_id, title=s.get("title") or "", artist=s.get("artist") or "",
                           release=s.get("release") or "", year=int(s.get("year") or 0),
                           genre=s.get("genre") or "", has_plays=bundle.collab_vector(row) is not None,
                           has_audio=has_audio, genre_scores=scores)
            return pb.GetSongResponse(song=song)

    @_rpc
    def GetBundleInfo(self, request: pb.GetBundleInfoRequest, context) -> pb.GetBundleInfoResponse:
        with self._bundle(context) as bundle:
            m = bundle.manifest
            counts = m.get("counts", {})
            indexes = [pb.IndexInfo(name=name, spec=str(spec.get("spec", "")), vectors=int(spec.get("vectors", 0)),
                                    dimension=int(spec.get("dimension", 0)),
                                    search_params={str(a): str(b) for a, b in (spec.get("search_params") or {}).items()},
                                    recall_at_10=float(spec.get("recall_at_10") or 0.0))
                       for name, spec in sorted(m.get("indexes", {}).items())]
            return pb.GetBundleInfoResponse(
                version=bundle.version, created_at=str(m.get("created_at", "")),
                users=int(counts.get("users", 0)), songs=int(counts.get("songs", 0)),
                songs_with_plays=int(counts.get("songs_with_plays", 0)),
                songs_with_audio=int(counts.get("songs_with_audio", 0)), indexes=indexes,
                source_runs={str(a): str(b) for a, b in (m.get("source_runs") or {}).items()
                             if b is not None},
                default_lists=[pb.DefaultListInfo(kind=kind, k=lists.k, acoustic_share=lists.acoustic_share,
                                                  diversity=lists.diversity)
                               for kind, lists in sorted(bundle.lists.items())])

    def Ping(self, request: pb.PingRequest, context) -> pb.PingResponse:
        return pb.PingResponse()
