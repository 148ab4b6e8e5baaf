"""The remote recommender: :class:`pmrs.Recommender`'s verbs answered by a ``pmrs-server``.

:func:`connect` opens a gRPC channel and returns a :class:`RemoteRecommender`, which has the
in-process recommender's public verbs with the same parameters, defaults and result types
(:mod:`pmrs.results`), and raises the same exceptions (:mod:`pmrs.errors`) with the server's
message: code written against one runs against the other, the way a DB-API program runs against
``sqlite3`` or a network database::

    >>> import pmrs
    >>> with pmrs.connect("127.0.0.1:50051") as rec:                # doctest: +SKIP
    ...     for s in rec.recommend("b80344d063b5ccb3212f76538f3d9e43d87dca9e", k=5).songs:
    ...         print(s.song_id, s.artist, s.title, s.sources)

What differs: every call is a round trip with a deadline (``timeout``, retries included, see
:mod:`pmrs.channel`), so :attr:`RemoteRecommender.version` and the other properties ask the server
each time; floats the proto carries as 32-bit ``float`` (scores, shares, diversity, recall,
confidences) arrive at float32 precision (settings are given back as the shortest decimal of
their float32, so a share of 0.2 reads 0.2); the server's request defaults apply (it may have
been started with overrides), and writes need the server's write token. Importing this module
loads gRPC and the generated messages, not FAISS or torch.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

import grpc

from .channel import MAX_RETRIES, auth_metadata, make_channel
from .errors import DeadlineExceeded, InvalidArgument, Unavailable, from_status
from .results import (AddedSong, Appended, BundleInfo, Evidence, GenreList, GenreRecommendations, GenreScore, History,
                      HistorySong, ListInfo, NameCount, RadioSongs, Reason, Recommendations, ScoredSong, Song,
                      SourceInfo)
from .serving.contract import Defaults
from .serving.recommend import MIXED, Filters
from .v1 import recommender_pb2 as pb
from .v1 import recommender_pb2_grpc as pb_grpc

__all__ = ["MAX_RETRIES", "RemoteRecommender", "connect"]

#: ``similar_songs(mode=...)`` names with a value of the proto's ``SimilarityMode`` (any other
#: source is named in ``SimilarSongsRequest.source``).
_MODES = {"collaborative": pb.SIMILARITY_MODE_COLLABORATIVE, "acoustic": pb.SIMILARITY_MODE_ACOUSTIC,
          MIXED: pb.SIMILARITY_MODE_MIXED, "metadata": pb.SIMILARITY_MODE_METADATA,
          "neighbours": pb.SIMILARITY_MODE_NEIGHBOURS}

log = logging.getLogger(__name__)
_R = TypeVar("_R")
#: Tries of a write that is not answered in time (each with the call's timeout; the request id
#: makes a repeat harmless).
WRITE_ATTEMPTS = 3


def connect(target: str | Sequence[str], *, token: str | None = None, tls: bool = False,
            ca_file: str | os.PathLike | None = None, cert_file: str | os.PathLike | None = None,
            key_file: str | os.PathLike | None = None, timeout: float = 5.0, retries: int = 3,
            backoff: float = 0.1, max_backoff: float = 2.0) -> "RemoteRecommender":
    """A recommender answered by the ``pmrs-server`` at ``target``.

    Parameters
    ----------
    target : str or sequence of str
        ``HOST:PORT``; or several replicas (a list, or comma-separated ``IP:PORT``), balanced
        round robin; or a gRPC target with a scheme (``dns:///name:port``).
    token : str, optional
        Bearer token sent with every call: the write token for :meth:`~RemoteRecommender.record_plays`
        and :meth:`~RemoteRecommender.add_song`, a read token where reads need one. Default:
        ``$PMRS_TOKEN`` when set; ``""`` sends none.
    tls : bool
        TLS instead of plaintext (implied by ``ca_file`` or ``cert_file``).
    ca_file, cert_file, key_file : path, optional
        PEM roots to trust (a private CA; default: the system's), and the client's certificate
        and key for a server that requires one (mutual TLS).
    timeout : float
        Deadline of every call, in seconds, retries included.
    retries : int
        Retries of a call that ends in ``UNAVAILABLE``, 0 to 4, after jittered exponential delays
        starting at ``backoff`` seconds, capped at ``max_backoff``.

    The channel connects lazily: an unreachable server is :class:`pmrs.Unavailable` on the first
    call. Close it with :meth:`~RemoteRecommender.close` or a ``with`` block.
    """
    if not timeout > 0:
        raise InvalidArgument(f"timeout must be positive (seconds), got {timeout}")
    channel = make_channel(target, tls=tls, retries=retries, backoff_s=backoff, max_backoff_s=max_backoff,
                           ca_file=ca_file, cert_file=cert_file, key_file=key_file)
    return RemoteRecommender(channel, timeout=timeout, token=token, target=target)


class RemoteRecommender:
    """:class:`pmrs.Recommender`'s verbs over a gRPC channel (see :func:`connect`). Thread-safe:
    one instance (one channel) serves many threads.

    ``channel``: an open ``grpc.Channel`` (closed by :meth:`close`); ``timeout``: each call's
    deadline in seconds; ``token``: as :func:`connect`'s.
    """

    def __init__(self, channel: grpc.Channel, *, timeout: float = 5.0, token: str | None = None,
                 target: str | Sequence[str] = "", write_attempts: int = WRITE_ATTEMPTS) -> None:
        self.target = target
        self.timeout = float(timeout)
        self.write_attempts = max(1, int(write_attempts))
        self._channel = channel
        self._metadata = auth_metadata(token)
        self._stub = pb_grpc.RecommenderStub(channel)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; later calls fail."""
        self._channel.close()

    def __enter__(self) -> "RemoteRecommender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteRecommender(target={self.target!r}, timeout={self.timeout})"

    def _write(self, method: Callable[..., _R], request: Any) -> _R:
        """A write, sent again with the same request (its ``request_id``) when a try ends in
        ``DEADLINE_EXCEEDED`` or ``UNAVAILABLE``: the server may have done the first, and then
        answers the retry as a duplicate of it (``duplicate`` true), never ``ALREADY_EXISTS``.
        At most ``write_attempts`` tries, each with the full ``timeout``."""
        for attempt in range(self.write_attempts):
            try:
                return self._call(method, request)
            except (DeadlineExceeded, Unavailable):
                if attempt + 1 == self.write_attempts:
                    raise
                log.info("write %s not answered in time; sent again with its request id", request.request_id)
        raise AssertionError("unreachable")

    def _call(self, method: Callable[..., _R], request: Any) -> _R:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            details = err.details() if hasattr(err, "details") else None
            name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
            raise from_status(name, details or str(err)) from None

    # -- the verbs --------------------------------------------------------------------------

    def recommend(self, user_id: str | None = None, seed_song_ids: Sequence[str] = (), k: int | None = None,
                  shares: Mapping[str, float] | None = None, diversity: float | None = None,
                  filters: Filters | None = None, include_played: bool = False,
                  explain: bool = False) -> Recommendations:
        """Songs for a known user (``user_id``) or for a listener described by seed songs; as
        :meth:`pmrs.Recommender.recommend`."""
        req = _request(pb.RecommendRequest, user_id=user_id or "", seed_song_ids=_ids(seed_song_ids, "seed_song_ids"),
                       k=_k(k), shares=dict(shares or {}), include_played=bool(include_played),
                       filters=_filters(filters), diversity=diversity, explain=bool(explain))
        r = self._call(self._stub.Recommend, req)
        return Recommendations(_scored(r.songs), r.bundle_version, folded_in=r.folded_in, precomputed=r.precomputed)

    def similar_songs(self, song_id: str, k: int | None = None, mode: str = MIXED,
                      shares: Mapping[str, float] | None = None, diversity: float | None = None,
                      filters: Filters | None = None, explain: bool = False) -> Recommendations:
        """Songs similar to ``song_id`` (never itself); as :meth:`pmrs.Recommender.similar_songs`."""
        if not mode:
            raise InvalidArgument(f"mode must be {MIXED!r} or one of the bundle's sources, got {mode!r}")
        req = _request(pb.SimilarSongsRequest, song_id=song_id, k=_k(k), mode=_MODES.get(mode, 0),
                       source="" if mode == MIXED else mode, shares=dict(shares or {}), filters=_filters(filters),
                       diversity=diversity, explain=bool(explain))
        r = self._call(self._stub.SimilarSongs, req)
        return Recommendations(_scored(r.songs), r.bundle_version, precomputed=r.precomputed)

    def recommend_by_genre(self, user_id: str | None = None, seed_song_ids: Sequence[str] = (),
                           k: int | None = None, genres: Sequence[str] = (),
                           include_played: bool = False) -> GenreRecommendations:
        """Songs for a user (or seed songs) under each genre, with per-genre confidences; as
        :meth:`pmrs.Recommender.recommend_by_genre`."""
        req = _request(pb.RecommendByGenreRequest, user_id=user_id or "",
                       seed_song_ids=_ids(seed_song_ids, "seed_song_ids"), k=_k(k), genres=_ids(genres, "genres"),
                       include_played=bool(include_played))
        r = self._call(self._stub.RecommendByGenre, req)
        return GenreRecommendations([GenreList(g.genre, float(g.confidence), _scored(g.songs),
                                               [float(c) for c in g.song_confidences]) for g in r.genres],
                                    r.bundle_version, folded_in=r.folded_in)

    def radio(self, song_id: str | None = None, artist: str | None = None, seed_song_ids: Sequence[str] = (),
              user_id: str | None = None, k: int | None = None, token: str | None = None,
              artist_gap: int | None = None, diversity: float | None = None,
              session: Sequence[tuple[str, str]] = (), explain: bool = False) -> RadioSongs:
        """The next songs of a radio, continued with ``token``; as :meth:`pmrs.Recommender.radio`."""
        from .serving.radio import check_gap, check_session

        events = [pb.RadioEvent(song_id=song, action=feedback_enum(action)) for song, action in check_session(session)]
        req = _request(pb.RadioRequest, song_id=song_id or "", artist=artist or "",
                       seed_song_ids=_ids(seed_song_ids, "seed_song_ids"), user_id=user_id or "", k=_k(k),
                       token=token or "", session=events, diversity=diversity, explain=bool(explain))
        if artist_gap is not None:
            req.artist_gap = check_gap(artist_gap)
        r = self._call(self._stub.Radio, req)
        return RadioSongs(_scored(r.songs), r.token, r.bundle_version, r.relaxed)

    def song(self, song_id: str) -> Song:
        """The catalog entry of ``song_id``, the sources with a vector for it and its genre
        confidences; :class:`pmrs.NotFound` for an unknown id."""
        return _song(self._call(self._stub.GetSong, _request(pb.GetSongRequest, song_id=song_id)).song)

    def history(self, user_id: str, limit: int = 50) -> History:
        """What the server knows of ``user_id``; as :meth:`pmrs.Recommender.history`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArgument(f"limit must be a whole number in 1..1000, got {limit!r}")
        m = self._call(self._stub.GetHistory, _request(pb.GetHistoryRequest, user_id=user_id, limit=limit))
        songs = lambda items: tuple(HistorySong(h.song_id, h.title, h.artist, h.genre, h.year, h.plays, h.skips)  # noqa: E731
                                    for h in items)
        counts = lambda items: tuple(NameCount(c.name, c.plays) for c in items)  # noqa: E731
        return History(m.user_id, m.played_songs, songs(m.songs), songs(m.liked), songs(m.disliked), songs(m.skipped),
                       tuple(m.hidden_artists), counts(m.top_artists), counts(m.top_genres))

    def info(self) -> BundleInfo:
        """What the server serves: the bundle's counts, sources with their index and recall,
        default lists, the request defaults in force, the live state and which server answered."""
        m = self._call(self._stub.GetBundleInfo, pb.GetBundleInfoRequest())
        order = {i.name: n for n, i in enumerate(m.indexes)}

        def in_order(shares, value=float) -> dict[str, float]:   # (a proto map has no order: the bundle's)
            names = sorted(shares, key=lambda name: (order.get(name, len(order)), name))
            return {name: value(shares[name]) for name in names}

        d = m.defaults   # (doubles)
        defaults = (Defaults(k=d.k, shares=in_order(d.shares), diversity=d.diversity,
                             similar_diversity=d.similar_diversity) if m.HasField("defaults") else Defaults())
        return BundleInfo(
            version=m.version, created_at=m.created_at, format_version=m.format_version, users=m.users,
            songs=m.songs, songs_with_plays=m.songs_with_plays, songs_with_audio=m.songs_with_audio,
            sources=[SourceInfo(name=i.name, space=i.space, covers_cold=i.covers_cold, spec=i.spec, vectors=i.vectors,
                                dimension=i.dimension, search_params={a: _param(v) for a, v in i.search_params.items()},
                                recall_at_10=float(i.recall_at_10), default_share=_setting(i.default_share))
                     for i in m.indexes],
            source_runs=dict(m.source_runs),
            default_lists=[ListInfo(kind=dl.kind, k=dl.k, shares=in_order(dl.shares, _setting),
                                    diversity=_setting(dl.diversity)) for dl in m.default_lists],
            defaults=defaults, live_seq=m.live_sequence, accepts_writes=m.accepts_writes, server=m.server,
            metrics_url=m.metrics_url)

    # -- live writes --------------------------------------------------------------------------

    def record_plays(self, user_id: str, plays: Mapping[str, int] | Sequence[tuple[str, int]],
                     request_id: str | None = None) -> Appended:
        """Record that ``user_id`` played songs (``{song_id: count}`` or pairs); as
        :meth:`pmrs.Recommender.record_plays`. Needs the write token. A call without a
        ``request_id`` gets a new one, so that a retry after ``UNAVAILABLE`` is applied once."""
        pairs = list(plays.items()) if isinstance(plays, Mapping) else [tuple(p) for p in plays]
        req = _request(pb.RecordPlaysRequest, user_id=user_id,
                       plays=[pb.Play(song_id=s, count=_count(s, c)) for s, c in pairs],
                       request_id=request_id or uuid.uuid4().hex)
        r = self._write(self._stub.RecordPlays, req)
        return Appended(r.sequence, r.duplicate)

    def record_feedback(self, user_id: str, song_id: str, action: str, request_id: str | None = None) -> Appended:
        """Record what ``user_id`` thinks of ``song_id`` (``"like"``, ``"skip"``, ``"dislike"``,
        ``"hide_artist"``); as :meth:`pmrs.Recommender.record_feedback`. Needs the write token. A
        call without a ``request_id`` gets a new one, so that a retry is applied once."""
        req = _request(pb.RecordFeedbackRequest, user_id=user_id, song_id=song_id,
                       action=feedback_enum(action), request_id=request_id or uuid.uuid4().hex)
        r = self._write(self._stub.RecordFeedback, req)
        return Appended(r.sequence, r.duplicate)

    def add_song(self, song_id: str, *, title: str = "", artist: str = "", release: str = "", year: int = 0,
                 genre: str = "", tags: Sequence[str] = (), audio: bytes | None = None,
                 filename: str = "clip", request_id: str | None = None) -> AddedSong:
        """Add a song nobody has heard, by its fields and, optionally, its audio clip (bytes in
        any container ``pmrs extract`` reads); as :meth:`pmrs.Recommender.add_song`. Needs the
        write token. A call without a ``request_id`` gets a new one; a try that is not answered in
        time is sent again with it (the server may have added the song meanwhile: the retry then
        answers like the first, ``duplicate`` true)."""
        if audio is not None and not len(audio):
            raise InvalidArgument("the clip is empty")
        clip = {} if audio is None else {"audio": bytes(audio)}
        req = _request(pb.AddSongRequest, song_id=song_id, title=title, artist=artist, release=release, year=year,
                       genre=genre, tags=_ids(tags, "tags"), audio_filename=filename or "clip",
                       request_id=request_id or uuid.uuid4().hex, **clip)
        r = self._write(self._stub.AddSong, req)
        return AddedSong(_song(r.song), r.sequence, r.duplicate)

    def refresh(self) -> int:
        """Nothing to do: the server applies other processes' writes itself (every 50 ms); 0."""
        return 0

    # -- what the server serves (asked each time: the server may swap bundles) ----------------------

    @property
    def version(self) -> str:
        """The served bundle's version."""
        return self.info().version

    @property
    def sources(self) -> list[str]:
        """The served bundle's sources, in its order."""
        return [s.name for s in self.info().sources]

    @property
    def defaults(self):
        """The request defaults the server applies (:class:`pmrs.Defaults`)."""
        return self.info().defaults

    @property
    def live_seq(self) -> int:
        """The last write of the write log the server has applied."""
        return self.info().live_seq

    def ping(self) -> float:
        """Call the server's no-op method; returns the round trip in seconds."""
        t0 = time.perf_counter()
        self._call(self._stub.Ping, pb.PingRequest())
        return time.perf_counter() - t0


# -- messages ---------------------------------------------------------------------------------

def _request(message, diversity: float | None = None, **fields):
    """``message(**fields)``, ``diversity`` set only when given (unset: the server's default);
    a value the message cannot hold (a count over 2**31, a number for a string) is
    :class:`pmrs.InvalidArgument`."""
    try:
        req = message(**fields)
        if diversity is not None:
            req.diversity = diversity
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{message.DESCRIPTOR.name}: {exc}") from None
    return req


def _k(k: int | None) -> int:
    return 0 if not k else int(k)


def _ids(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str):  # a bare string would be split into characters
        raise TypeError(f"{what} must be a sequence of strings, not a string")
    return list(values)


def _count(song_id: str, count) -> int:
    c = float(count)
    if not math.isfinite(c) or c != int(c):
        raise InvalidArgument(f"play counts must be whole numbers; song {song_id!r} has {count}")
    return int(c)


def _filters(filters: Filters | None) -> pb.Filters | None:
    if filters is None or not filters.active:
        return None
    return pb.Filters(genres=list(filters.genres), min_year=filters.min_year, max_year=filters.max_year,
                      exclude_artists=list(filters.exclude_artists))


def _scored(songs) -> list[ScoredSong]:
    return [ScoredSong(s.song_id, s.title, s.artist, s.genre, s.year, float(s.score), tuple(s.sources),
                       tuple(_reason(r) for r in s.reasons))
            for s in songs]


def _reason(m: pb.Reason) -> Reason:
    return Reason(m.source, m.rank, _setting(m.share), m.text,
                  tuple(Evidence(e.song_id, e.title, e.artist, float(e.weight)) for e in m.evidence),
                  tuple(m.shared))


def _song(m: pb.Song) -> Song:
    return Song(song_id=m.song_id, title=m.title, artist=m.artist, release=m.release, year=m.year, genre=m.genre,
                sources=tuple(m.sources),
                genre_scores=tuple(GenreScore(g.genre, float(g.confidence)) for g in m.genre_scores),
                tags=tuple((t.tag, float(t.weight)) for t in m.tags), genre_warning=m.genre_warning,
                acoustic_warning=m.acoustic_warning)


_INT = re.compile(r"-?[0-9]+")


def _param(text: str) -> int | float | str:
    """A search parameter as the manifest holds it: the proto's map carries strings."""
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _setting(x: float) -> float:
    """A setting sent as a 32-bit float (a share, a diversity) as the shortest decimal that is
    the same float32: 0.2 reads 0.2, not 0.20000000298."""
    x = float(x)
    if not math.isfinite(x):
        return x
    for digits in range(1, 10):
        y = float(f"{x:.{digits}g}")
        if struct.unpack("f", struct.pack("f", y))[0] == x:
            return y
    return x


def feedback_enum(action: str) -> int:
    """The proto's ``FeedbackAction`` of a feedback action name (:data:`pmrs.live.feedback.ACTIONS`)."""
    from .live.feedback import ACTIONS

    if action not in ACTIONS:
        raise InvalidArgument(f"action must be one of {', '.join(ACTIONS)}, got {str(action)[:40]!r}")
    return pb.FeedbackAction.Value(f"FEEDBACK_ACTION_{action.upper()}")


def feedback_action(value: int) -> str:
    """The action name of a proto ``FeedbackAction`` (``InvalidArgument`` for none or an unknown one)."""
    from .live.feedback import ACTIONS

    name = pb.FeedbackAction.Name(value).removeprefix("FEEDBACK_ACTION_").lower() \
        if value in pb.FeedbackAction.values() else ""
    if name not in ACTIONS:
        raise InvalidArgument(f"action must be one of {', '.join('FEEDBACK_ACTION_' + a.upper() for a in ACTIONS)}")
    return name


def history_message(h: History) -> "pb.GetHistoryResponse":
    """A :class:`pmrs.results.History` as the proto's ``GetHistoryResponse`` (the server's side)."""
    songs = lambda items: [pb.HistorySong(song_id=x.song_id, title=x.title, artist=x.artist, genre=x.genre,  # noqa: E731
                                          year=x.year, plays=x.plays, skips=x.skips) for x in items]
    counts = lambda items: [pb.NameCount(name=c.name, plays=c.plays) for c in items]  # noqa: E731
    return pb.GetHistoryResponse(user_id=h.user_id, played_songs=h.played_songs, songs=songs(h.songs),
                                 liked=songs(h.liked), disliked=songs(h.disliked), skipped=songs(h.skipped),
                                 hidden_artists=list(h.hidden_artists), top_artists=counts(h.top_artists),
                                 top_genres=counts(h.top_genres))
