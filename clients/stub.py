"""``PMRSClient``: a typed Python client for the ``pmrs.v1.Recommender`` gRPC service.

The client turns the protobuf messages of ``proto/pmrs/v1/recommender.proto`` into plain frozen
dataclasses and every failed call into one exception, :class:`PMRSError`, that carries the gRPC
status code's name (``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ``"UNAVAILABLE"``,
``"DEADLINE_EXCEEDED"``, ...) and the server's message.

Deadlines and retries
---------------------
Every call gets a deadline of ``timeout_s`` seconds; it covers the whole call, retries included.
Calls that end in ``UNAVAILABLE`` (server not reachable, or no bundle loaded yet) are retried by
gRPC itself, with exponential backoff, through a retry policy in the channel's service config
(channel option ``grpc.service_config``): up to ``retries`` further attempts, the n-th after a
random delay in ``[0, backoff_s * 2**(n-1)]`` capped at ``max_backoff_s`` (gRPC's jittered
backoff). gRPC allows at most 5 attempts per call, so ``retries`` is 0 to 4. No other status code
is retried: they are answers, not transient failures.

Example
-------
>>> with PMRSClient("127.0.0.1:50051") as client:          # doctest: +SKIP
...     for song in client.recommend("b80344d063b5ccb3212f76538f3d9e43d87dca9e", k=5).songs:
...         print(song.title, song.artist, song.score, song.source)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

import grpc

from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

__all__ = [
    "BundleInfo",
    "DefaultListInfo",
    "GenreList",
    "GenreScore",
    "IndexInfo",
    "MAX_RETRIES",
    "PMRSClient",
    "PMRSError",
    "Recommendations",
    "SIMILARITY_MODES",
    "SongInfo",
    "SongResult",
    "SOURCE_NAMES",
    "TOKEN_ENV",
    "Written",
    "auth_metadata",
    "channel_credentials",
    "channel_target",
    "make_channel",
]

TOKEN_ENV = "PMRS_TOKEN"
"""The environment variable the client takes its bearer token from when none is given."""

SERVICE_NAME = "pmrs.v1.Recommender"
"""Fully qualified gRPC service name (what the retry policy applies to)."""

MAX_RETRIES = 4
"""gRPC caps a call at 5 attempts, hence at most 4 retries."""

SOURCE_NAMES: dict[int, str] = {
    pb.SOURCE_UNSPECIFIED: "unspecified",
    pb.SOURCE_COLLABORATIVE: "collaborative",
    pb.SOURCE_ACOUSTIC: "acoustic",
    pb.SOURCE_BOTH: "both",
}
"""``Source`` enum value -> the name :class:`SongResult` carries."""

SIMILARITY_MODES: dict[str, int] = {
    "collaborative": pb.SIMILARITY_MODE_COLLABORATIVE,
    "acoustic": pb.SIMILARITY_MODE_ACOUSTIC,
    "mixed": pb.SIMILARITY_MODE_MIXED,
    "metadata": pb.SIMILARITY_MODE_METADATA,
    "neighbours": pb.SIMILARITY_MODE_NEIGHBOURS,
}
"""``similar(mode=...)`` name -> ``SimilarityMode`` enum value."""


class PMRSError(Exception):
    """A failed PMRS call.

    Parameters
    ----------
    code : str
        The gRPC status code's name, e.g. ``"NOT_FOUND"`` or ``"UNAVAILABLE"``.
    message : str
        The server's (or gRPC's) readable explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "PMRSError":
        """Build the error from a ``grpc.RpcError`` raised by a blocking call."""
        code = err.code() if hasattr(err, "code") else None
        details = err.details() if hasattr(err, "details") else None
        name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        return cls(name, details or str(err))


@dataclass(frozen=True)
class SongResult:
    """One returned song.

    Attributes
    ----------
    song_id, title, artist, genre : str
        Catalog fields ("" when unknown).
    year : int
        Release year (0 when unknown).
    score : float
        Inner product of the query vector with the song's vector in the index named by ``source``.
    source : str
        Which of the two original sources produced it: ``"collaborative"``, ``"acoustic"``,
        ``"both"``, or ``"unspecified"`` when it came from other sources.
    sources : tuple of str
        Every source whose candidates held it, in the bundle's order.
    """

    song_id: str
    title: str
    artist: str
    genre: str
    year: int
    score: float
    source: str
    sources: tuple[str, ...] = ()

    @classmethod
    def from_proto(cls, m: pb.ScoredSong) -> "SongResult":
        """Convert a ``pmrs.v1.ScoredSong``."""
        return cls(song_id=m.song_id, title=m.title, artist=m.artist, genre=m.genre, year=m.year,
                   score=float(m.score), source=SOURCE_NAMES.get(m.source, "unspecified"),
                   sources=tuple(m.sources))


@dataclass(frozen=True)
class GenreList:
    """One genre of :meth:`PMRSClient.recommend_by_genre`: its confidence (how much the user's
    recommendations lean to it; the genres' sum to 1), its songs best first, and for each song
    the confidence that it belongs to the genre."""

    genre: str
    confidence: float
    songs: list[SongResult]
    song_confidences: list[float]


@dataclass(frozen=True)
class Recommendations:
    """The answer to :meth:`PMRSClient.recommend`.

    Attributes
    ----------
    songs : list of SongResult
        At most k songs, best first.
    bundle_version : str
        The bundle that answered.
    folded_in : bool
        True when the user was unknown and was folded in from the seed songs.
    """

    songs: list[SongResult]
    bundle_version: str
    folded_in: bool


@dataclass(frozen=True)
class GenreScore:
    """A genre and the genre head's confidence in it (probability, 0 to 1)."""

    genre: str
    confidence: float


@dataclass(frozen=True)
class SongInfo:
    """One song's catalog entry, as the served bundle knows it.

    Attributes
    ----------
    song_id, title, artist, release, genre : str
        Catalog fields ("" when unknown).
    year : int
        Release year (0 when unknown).
    has_plays : bool
        The song has WMF factors (somebody played it).
    has_audio : bool
        The song has audio, hence CNN-predicted factors.
    genre_scores : list of GenreScore
        The genre head's confidences, highest first (empty without audio or genre head).
    """

    song_id: str
    title: str
    artist: str
    release: str
    year: int
    genre: str
    has_plays: bool
    has_audio: bool
    genre_scores: list[GenreScore] = field(default_factory=list)

    @classmethod
    def from_proto(cls, m: pb.Song) -> "SongInfo":
        """Convert a ``pmrs.v1.Song``."""
        return cls(song_id=m.song_id, title=m.title, artist=m.artist, release=m.release,
                   year=m.year, genre=m.genre, has_plays=m.has_plays, has_audio=m.has_audio,
                   genre_scores=[GenreScore(g.genre, float(g.confidence)) for g in m.genre_scores])


@dataclass(frozen=True)
class IndexInfo:
    """One FAISS index of the served bundle.

    Attributes
    ----------
    name : str
        The source's name, e.g. ``"collaborative"``, ``"acoustic"``, ``"metadata"``, ``"neighbours"``.
    spec : str
        FAISS ``index_factory`` string, e.g. ``"Flat"`` or ``"IVF1024,Flat"`` (the neighbours
        source: ``"sparse top-K neighbours"``).
    vectors : int
        Number of vectors indexed.
    dimension : int
        Vector dimension.
    search_params : dict of str to str
        Search parameters, e.g. ``{"nprobe": "32"}``.
    recall_at_10 : float
        recall@10 against exact search, measured at build time.
    space : str
        ``"wmf"`` (queried with the user's factors), ``"cooccurrence"`` (the neighbours source:
        sums of song-to-song similarity rows, no vectors) or another vector space.
    covers_cold : bool
        The source holds songs nobody played (it can recommend them).
    default_share : float
        Its share of a list when a request names no shares.
    """

    name: str
    spec: str
    vectors: int
    dimension: int
    search_params: dict[str, str]
    recall_at_10: float
    space: str = ""
    covers_cold: bool = False
    default_share: float = 0.0


@dataclass(frozen=True)
class DefaultListInfo:
    """A default request whose answers the bundle holds precomputed (answered by lookup).

    Attributes
    ----------
    kind : str
        ``"recommend"`` (every known user's Recommend) or ``"similar"`` (every song's mixed
        SimilarSongs).
    k : int
        The k the lists answer.
    acoustic_share, diversity : float
        The settings they were computed with (a share with the same acoustic quota counts as
        the same).
    """

    kind: str
    k: int
    acoustic_share: float
    diversity: float


@dataclass(frozen=True)
class BundleInfo:
    """What the server is serving.

    Attributes
    ----------
    version : str
        Bundle version (its directory name).
    created_at : str
        When the bundle was built (RFC 3339).
    users, songs, songs_with_plays, songs_with_audio : int
        Counts.
    indexes : list of IndexInfo
        The bundle's indexes.
    source_runs : dict of str to str
        The model runs the bundle was built from, e.g. ``{"wmf": ..., "cnn": ...}``.
    default_lists : list of DefaultListInfo
        The default requests whose answers the bundle holds precomputed.
    server : str
        Which server answered (its address and process id): replicas share a bundle.
    live_sequence : int
        The last write of the write log the server has applied.
    accepts_writes : bool
        The server takes writes (it has a write token).
    """

    version: str
    created_at: str
    users: int
    songs: int
    songs_with_plays: int
    songs_with_audio: int
    indexes: list[IndexInfo]
    source_runs: dict[str, str]
    default_lists: list[DefaultListInfo] = field(default_factory=list)
    server: str = ""
    live_sequence: int = 0
    accepts_writes: bool = False

    @classmethod
    def from_proto(cls, m: pb.GetBundleInfoResponse) -> "BundleInfo":
        """Convert a ``pmrs.v1.GetBundleInfoResponse``."""
        return cls(version=m.version, created_at=m.created_at, users=m.users, songs=m.songs,
                   songs_with_plays=m.songs_with_plays, songs_with_audio=m.songs_with_audio,
                   indexes=[IndexInfo(name=i.name, spec=i.spec, vectors=i.vectors,
                                      dimension=i.dimension, search_params=dict(i.search_params),
                                      recall_at_10=float(i.recall_at_10), space=i.space,
                                      covers_cold=bool(i.covers_cold),
                                      default_share=round(float(i.default_share), 6)) for i in m.indexes],
                   source_runs=dict(m.source_runs),
                   default_lists=[DefaultListInfo(kind=d.kind, k=d.k, acoustic_share=round(float(d.acoustic_share), 6),
                                                  diversity=round(float(d.diversity), 6))
                                  for d in m.default_lists],
                   server=m.server, live_sequence=m.live_sequence, accepts_writes=m.accepts_writes)


@dataclass(frozen=True)
class Written:
    """An acknowledged write: its sequence number in the server's write log, and whether the
    request id had been written before (a retry: nothing new was written)."""

    sequence: int
    duplicate: bool = False


def service_config(retries: int, backoff_s: float = 0.1, max_backoff_s: float = 2.0) -> str:
    """The JSON service config that retries ``UNAVAILABLE`` calls with exponential backoff.

    Parameters
    ----------
    retries : int
        Further attempts after the first, 0 to :data:`MAX_RETRIES`. 0 gives a config without a
        retry policy.
    backoff_s : float
        Upper bound of the (jittered) delay before the first retry, in seconds; doubles each retry.
    max_backoff_s : float
        Cap of the delay bound, in seconds.

    Returns
    -------
    str
        JSON for the ``grpc.service_config`` channel option.
    """
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be 0 to {MAX_RETRIES} (gRPC allows at most 5 attempts "
                         f"per call), got {retries}")
    if backoff_s <= 0 or max_backoff_s < backoff_s:
        raise ValueError(f"need 0 < backoff_s <= max_backoff_s, got {backoff_s}, {max_backoff_s}")
    method: dict[str, Any] = {"name": [{"service": SERVICE_NAME}]}
    if retries:
        method["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": f"{backoff_s:.6f}s",
            "maxBackoff": f"{max_backoff_s:.6f}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method]})


def channel_target(target: str | Sequence[str]) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for one server or several replicas.

    ``target``: ``HOST:PORT``; or several replicas, as a list or comma-separated
    (``127.0.0.1:50051,127.0.0.1:50052``), each an IP address and port (``localhost`` allowed):
    they become gRPC's ``ipv4:``/``ipv6:`` target with the ``round_robin`` policy, so calls (and
    the connections under them) spread over the replicas and a replica that goes away is skipped.
    A target with a scheme (``dns:///name:port``, ``ipv4:...``) is passed as it is, with
    ``round_robin``: a DNS name that resolves to every replica balances the same way.
    """
    items = [t.strip() for t in ([target] if isinstance(target, str) else list(target)) for t in t.split(",")]
    items = [t for t in items if t]
    if not items:
        raise ValueError("no target given")
    if len(items) == 1 and ":" in items[0] and items[0].split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix"):
        return items[0], [("grpc.lb_policy_name", "round_robin")]
    if len(items) == 1:
        return items[0], []
    import ipaddress

    family = set()
    for t in items:
        host, sep, port = t.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        try:
            family.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(f"several targets must be IP:PORT (got {t!r}); for host names use one DNS name "
                             "that resolves to every replica, as dns:///NAME:PORT") from None
        if not sep or not port.isdigit():
            raise ValueError(f"a target is IP:PORT, got {t!r}")
    if len(family) != 1:
        raise ValueError("several targets must all be IPv4 or all IPv6")
    scheme = "ipv4" if family == {4} else "ipv6"
    addresses = ",".join(t.replace("localhost", "127.0.0.1") for t in items)
    return f"{scheme}:{addresses}", [("grpc.lb_policy_name", "round_robin")]


def make_channel(target: str | Sequence[str], *, secure: bool = False, retries: int = 0, backoff_s: float = 0.1,
                 max_backoff_s: float = 2.0,
                 options: Sequence[tuple[str, Any]] = (), ca_file: str | os.PathLike | None = None,
                 cert_file: str | os.PathLike | None = None,
                 key_file: str | os.PathLike | None = None) -> grpc.Channel:
    """Open a channel to a PMRS server.

    Parameters
    ----------
    target : str or sequence of str
        ``HOST:PORT``, or several replicas (:func:`channel_target`: round robin).
    secure : bool
        TLS instead of plaintext (implied by ``ca_file`` or ``cert_file``).
    ca_file : path, optional
        PEM root certificates to trust (a private CA or a self-signed server certificate);
        default: the system's.
    cert_file, key_file : path, optional
        The client's PEM certificate and key, for a server that requires client certificates.
    retries, backoff_s, max_backoff_s
        Retry policy for ``UNAVAILABLE``, see :func:`service_config`. With ``retries=0`` gRPC's
        retries are switched off altogether (what a load test wants: every failure counted).
    options : sequence of (str, value)
        Further channel options.

    Returns
    -------
    grpc.Channel
        The channel (connects lazily, on the first call).
    """
    opts: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retries, backoff_s, max_backoff_s)),
        ("grpc.enable_retries", 1 if retries else 0),
        *options,
    ]
    target, balance = channel_target(target)
    opts += balance
    creds = channel_credentials(secure, ca_file, cert_file, key_file)
    if creds is not None:
        return grpc.secure_channel(target, creds, options=opts)
    return grpc.insecure_channel(target, options=opts)


def channel_credentials(secure: bool = False, ca_file: str | os.PathLike | None = None,
                        cert_file: str | os.PathLike | None = None,
                        key_file: str | os.PathLike | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials for a channel (sync or ``grpc.aio``), or None for plaintext: TLS when
    ``secure`` or any file is given; ``ca_file`` the roots to trust (default: the system's),
    ``cert_file`` and ``key_file`` (together) the client's certificate for mutual TLS."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together")
    if not (secure or ca_file is not None or cert_file is not None):
        return None
    read = lambda p: None if p is None else Path(p).read_bytes()  # noqa: E731
    return grpc.ssl_channel_credentials(root_certificates=read(ca_file), private_key=read(key_file),
                                        certificate_chain=read(cert_file))


def auth_metadata(token: str | None = None) -> tuple[tuple[str, str], ...] | None:
    """The call metadata that carries a bearer token (``token``, else ``$PMRS_TOKEN``), or None."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "").strip() or None
    return (("authorization", f"Bearer {token}"),) if token else None


def _set_optional(req, **fields) -> None:
    """Set the proto3 ``optional`` fields given (not None); unset ones take the server's default."""
    for name, value in fields.items():
        if value is not None:
            setattr(req, name, value)


def _filters(genres: Iterable[str], min_year: int, max_year: int,
             exclude_artists: Iterable[str]) -> pb.Filters:
    return pb.Filters(genres=list(genres), min_year=min_year, max_year=max_year,
                      exclude_artists=list(exclude_artists))


def _strs(values: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(values, str):  # a bare string would be split into characters
        raise TypeError(f"{what} must be a sequence of strings, not a string")
    return list(values)


_R = TypeVar("_R")


class PMRSClient:
    """A typed client of the PMRS recommender service.

    Parameters
    ----------
    target : str
        ``HOST:PORT`` of ``pmrs-server``.
    timeout_s : float
        Deadline of every call, in seconds (retries included).
    retries : int
        Retries of a call that ends in ``UNAVAILABLE``, 0 to 4, with exponential backoff.
    secure : bool
        Use TLS (system root certificates) instead of plaintext.
    backoff_s : float
        Upper bound of the jittered delay before the first retry, in seconds (doubles per retry).
    max_backoff_s : float
        Cap of the retry delay bound, in seconds.
    token : str, optional
        Bearer token sent with every call (``authorization: Bearer <token>``): the write token
        for :meth:`record_plays` and :meth:`add_song`, a read token where reads need one.
        Default: ``$PMRS_TOKEN`` when set.
    ca_file, cert_file, key_file : path, optional
        TLS settings, see :func:`make_channel`.

    Notes
    -----
    Writes carry a request id (a new UUID unless given), so a write that gRPC retries after
    ``UNAVAILABLE`` is applied once.
    Thread-safe: one client (one channel) can serve many threads. Use it as a context manager,
    or call :meth:`close`, to release the channel.
    """

    def __init__(self, target: str = "127.0.0.1:50051", timeout_s: float = 5.0, retries: int = 3,
                 secure: bool = False, *, backoff_s: float = 0.1,
                 max_backoff_s: float = 2.0, token: str | None = None,
                 ca_file: str | os.PathLike | None = None, cert_file: str | os.PathLike | None = None,
                 key_file: str | os.PathLike | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.target = target
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self._metadata = auth_metadata(token)
        self._channel = make_channel(target, secure=secure, retries=retries, backoff_s=backoff_s,
                                     max_backoff_s=max_backoff_s, ca_file=ca_file, cert_file=cert_file,
                                     key_file=key_file)
        self._stub = pb_grpc.RecommenderStub(self._channel)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; later calls fail."""
        self._channel.close()

    def __enter__(self) -> "PMRSClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PMRSClient(target={self.target!r}, timeout_s={self.timeout_s}, "
                f"retries={self.retries})")

    # -- calls ------------------------------------------------------------------------------

    def _call(self, method: Callable[..., _R], request: Any) -> _R:
        try:
            return method(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as err:
            raise PMRSError.from_rpc_error(err) from None

    def recommend(self, user_id: str | None = None, *, seed_song_ids: Sequence[str] = (),
                  k: int = 10, acoustic_share: float | None = None, shares: Mapping[str, float] | None = None,
                  diversity: float | None = None, include_played: bool = False, genres: Sequence[str] = (), min_year: int = 0,
                  max_year: int = 0, exclude_artists: Sequence[str] = ()) -> Recommendations:
        """Songs for a user.

        Parameters
        ----------
        user_id : str or None
            A user the model knows. None (or "") for an unknown user described by
            ``seed_song_ids``.
        seed_song_ids : sequence of str
            Songs an unknown user likes (at most 500); folded in by the server.
        k : int
            Number of songs, 1 to 1000 (0 means 10).
        acoustic_share : float or None
            Share of the list drawn from the acoustic source, 0 to 1; None: the server default.
        shares : mapping of str to float, or None
            Each named source's share of the list (source names: :meth:`info`); the sources not
            named share what is left. Do not name ``"acoustic"`` here and in ``acoustic_share``.
        diversity : float or None
            Weight of diversity in the MMR re-ranking, 0 to 1; None: the server default.
        include_played : bool
            Also return songs the user played (or sent as seeds).
        genres, min_year, max_year, exclude_artists
            Filters; empty values restrict nothing (years: 0 is no bound).

        Returns
        -------
        Recommendations
            Songs best first, the bundle version, whether the user was folded in.

        Raises
        ------
        PMRSError
            ``NOT_FOUND`` (unknown user, no known seed), ``INVALID_ARGUMENT``, ``UNAVAILABLE``,
            ``DEADLINE_EXCEEDED``, ...
        """
        req = pb.RecommendRequest(user_id=user_id or "",
                                  seed_song_ids=_strs(seed_song_ids, "seed_song_ids"), k=k,
                                  include_played=include_played, shares=dict(shares or {}),
                                  filters=_filters(_strs(genres, "genres"), min_year, max_year,
                                                   _strs(exclude_artists, "exclude_artists")))
        _set_optional(req, acoustic_share=acoustic_share, diversity=diversity)
        resp = self._call(self._stub.Recommend, req)
        return Recommendations(songs=[SongResult.from_proto(s) for s in resp.songs],
                               bundle_version=resp.bundle_version, folded_in=resp.folded_in)

    def similar(self, song_id: str, *, k: int = 10, mode: str = "mixed",
                acoustic_share: float | None = None, shares: Mapping[str, float] | None = None,
                diversity: float | None = None,
                genres: Sequence[str] = (), min_year: int = 0, max_year: int = 0,
                exclude_artists: Sequence[str] = ()) -> list[SongResult]:
        """Songs similar to a song (never the song itself), most similar first.

        Parameters
        ----------
        song_id : str
            The song to find neighbours of.
        k : int
            Number of songs, 1 to 1000 (0 means 10).
        mode : str
            ``"mixed"`` (every source with a vector for the song, blended under the shares), or one
            source's name: ``"collaborative"`` (the song needs plays), ``"acoustic"`` (the song
            needs audio), or any other source the bundle has.
        acoustic_share : float or None
            For ``"mixed"``: share drawn from the acoustic index, 0 to 1; None: server default.
        diversity : float or None
            Weight of diversity in the re-ranking, 0 to 1; None: no re-ranking.
        genres, min_year, max_year, exclude_artists
            Filters, as in :meth:`recommend`.

        Returns
        -------
        list of SongResult
            At most k songs.

        Raises
        ------
        ValueError
            Unknown ``mode``.
        PMRSError
            ``NOT_FOUND`` (unknown song, or it lacks the vector ``mode`` needs), ...
        """
        if not mode:
            raise ValueError("mode must be 'mixed' or a source's name")
        req = pb.SimilarSongsRequest(song_id=song_id, k=k, mode=SIMILARITY_MODES.get(mode, 0),
                                     source="" if mode in SIMILARITY_MODES else mode,
                                     shares=dict(shares or {}), filters=_filters(_strs(genres, "genres"), min_year, max_year,
                                                      _strs(exclude_artists, "exclude_artists")))
        _set_optional(req, acoustic_share=acoustic_share, diversity=diversity)
        resp = self._call(self._stub.SimilarSongs, req)
        return [SongResult.from_proto(s) for s in resp.songs]

    def recommend_by_genre(self, user_id: str | None = None, *, seed_song_ids: Sequence[str] = (),
                           k: int = 10, genres: Sequence[str] = (),
                           include_played: bool = False) -> list[GenreList]:
        """Songs for a user (or seed songs) under each genre, the genres in decreasing confidence.

        Raises
        ------
        PMRSError
            ``NOT_FOUND`` (unknown user, no known seed), ``INVALID_ARGUMENT``, ...
        """
        req = pb.RecommendByGenreRequest(user_id=user_id or "", seed_song_ids=_strs(seed_song_ids, "seed_song_ids"),
                                         k=k, genres=_strs(genres, "genres"), include_played=include_played)
        resp = self._call(self._stub.RecommendByGenre, req)
        return [GenreList(genre=g.genre, confidence=round(float(g.confidence), 6),
                          songs=[SongResult.from_proto(s) for s in g.songs],
                          song_confidences=[round(float(c), 6) for c in g.song_confidences])
                for g in resp.genres]

    def song(self, song_id: str) -> SongInfo:
        """One song's catalog entry.

        Raises
        ------
        PMRSError
            ``NOT_FOUND`` for an unknown song, ...
        """
        resp = self._call(self._stub.GetSong, pb.GetSongRequest(song_id=song_id))
        return SongInfo.from_proto(resp.song)

    def bundle_info(self) -> BundleInfo:
        """What the server is serving: bundle version, counts, indexes and their recall."""
        return BundleInfo.from_proto(self._call(self._stub.GetBundleInfo,
                                                pb.GetBundleInfoRequest()))

    def record_plays(self, user_id: str, plays: Mapping[str, int] | Sequence[tuple[str, int]], *,
                     request_id: str | None = None) -> "Written":
        """Record that ``user_id`` played songs (``{song_id: count}`` or pairs); needs the write
        token. Durable when this returns; the user's next recommendations reflect it.

        Raises
        ------
        PMRSError
            ``NOT_FOUND`` (an unknown song: nothing recorded), ``INVALID_ARGUMENT`` (a count not
            in 1..100,000), ``UNAUTHENTICATED`` / ``PERMISSION_DENIED`` (token), ``UNAVAILABLE``.
        """
        pairs = list(plays.items()) if isinstance(plays, Mapping) else [tuple(p) for p in plays]
        req = pb.RecordPlaysRequest(user_id=user_id, plays=[pb.Play(song_id=s, count=int(c)) for s, c in pairs],
                                    request_id=request_id or uuid.uuid4().hex)
        resp = self._call(self._stub.RecordPlays, req)
        return Written(sequence=resp.sequence, duplicate=resp.duplicate)

    def add_song(self, song_id: str, *, title: str = "", artist: str = "", release: str = "", year: int = 0,
                 genre: str = "", tags: Sequence[str] = (), audio: bytes | str | os.PathLike | None = None,
                 audio_filename: str | None = None, request_id: str | None = None) -> SongInfo:
        """Add a song nobody has heard, with its audio clip (bytes, or a file path) or by its
        fields alone; needs the write token. Returns the song as the server now knows it.

        Raises
        ------
        PMRSError
            ``ALREADY_EXISTS``, ``INVALID_ARGUMENT`` (audio that cannot be used, with the reason),
            ``RESOURCE_EXHAUSTED`` (a clip over the size limit), token and availability errors.
        """
        if audio is not None and not isinstance(audio, (bytes, bytearray)):
            path = Path(audio)
            audio, audio_filename = path.read_bytes(), audio_filename or path.name
        req = pb.AddSongRequest(song_id=song_id, title=title, artist=artist, release=release, year=year,
                                genre=genre, tags=_strs(tags, "tags"), audio=bytes(audio or b""),
                                audio_filename=audio_filename or "", request_id=request_id or uuid.uuid4().hex)
        return SongInfo.from_proto(self._call(self._stub.AddSong, req).song)

    def ping(self) -> float:
        """Call the no-op method.

        Returns
        -------
        float
            Round-trip time in seconds.
        """
        t0 = time.perf_counter()
        self._call(self._stub.Ping, pb.PingRequest())
        return time.perf_counter() - t0
