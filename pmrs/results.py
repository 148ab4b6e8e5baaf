"""What PMRS answers: the result types of :class:`pmrs.Recommender` and of the remote recommender
:func:`pmrs.connect` gives, one set for both.

Plain dataclasses with song ids and catalog fields, no arrays: an in-process answer and the same
answer over gRPC compare equal field by field (floats that travel as the proto's 32-bit
``float``, such as scores, recall and confidences, to float32 precision). Importing this module
loads no FAISS, torch or gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .serving.contract import ACOUSTIC, COLLABORATIVE, Defaults

__all__ = ["AddedSong", "Appended", "BundleInfo", "Defaults", "Evidence", "Reason", "GenreList", "GenreRecommendations", "GenreScore",
           "ListInfo", "RadioSongs", "Recommendations", "ScoredSong", "Song", "SourceInfo"]


@dataclass(frozen=True)
class Evidence:
    """A song that is part of a reason: one of the listener's songs (or the seed) and how much it
    weighs in the reason (collaborative: its share of the score; neighbours: the stored
    similarity; acoustic and other vector sources: the cosine of the two songs' vectors)."""

    song_id: str
    title: str
    artist: str
    weight: float


@dataclass(frozen=True)
class Reason:
    """Why one source placed a song: the source, the song's rank among that source's candidates
    for the request (1: its first), the source's share of the list, a sentence a listener can
    read, and the evidence (songs, or for the metadata source the attributes it shares:
    ``"artist: X"``, ``"genre: rock"``, ``"decade: 1990s"``)."""

    source: str
    rank: int
    share: float
    text: str
    evidence: tuple[Evidence, ...] = ()
    shared: tuple[str, ...] = ()


@dataclass(slots=True)
class ScoredSong:
    """A recommended song: catalog fields ("" / 0 when unknown), its score (the inner product of
    the query with the song's vector in the source that ranked it highest) and the sources whose
    candidate lists held it, in bundle order; with ``explain``, one :class:`Reason` per source."""

    song_id: str
    title: str
    artist: str
    genre: str
    year: int
    score: float
    sources: tuple[str, ...]
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class Recommendations:
    """Songs best first; the bundle that answered; whether the user was folded in from seed songs;
    whether the answer came from the bundle's precomputed default lists."""

    songs: list[ScoredSong]
    bundle_version: str
    folded_in: bool = False
    precomputed: bool = False

    @property
    def song_ids(self) -> list[str]:
        return [s.song_id for s in self.songs]


@dataclass(frozen=True)
class RadioSongs:
    """The next stretch of a radio (:meth:`pmrs.Recommender.radio`): songs in the order to play
    them, the ``token`` that continues the radio after them (pass it back with the session's
    skips, dislikes and likes), the bundle that answered, and whether the artist gap had to be
    relaxed (the candidates held no song that kept it). Fewer than ``k`` songs (none at the
    end): every song the sources reach has been played."""

    songs: list[ScoredSong]
    token: str
    bundle_version: str
    relaxed: bool = False

    @property
    def song_ids(self) -> list[str]:
        return [s.song_id for s in self.songs]


class GenreScore(NamedTuple):
    """A genre and the genre head's confidence in it (a probability, 0 to 1). A tuple:
    ``for genre, confidence in song.genre_scores`` works."""

    genre: str
    confidence: float


@dataclass(frozen=True)
class Song:
    """A song as the bundle knows it: catalog fields, the sources with a vector for it, and the
    genre head's confidences (highest first; empty without audio or head) and its Last.fm tags
    ``(tag, weight 0-100)``, heaviest first (at most ``serving.contract.MAX_SONG_TAGS``).
    ``genre_warning``: why the confidences are unreliable (the genre head learned from too little,
    ``pmrs.acoustic.undertrained``), ``""`` when nothing says so or there are none.
    ``acoustic_warning``: why its acoustic vector (the CNN's prediction, what a song nobody played
    is recommended by) is unreliable (the CNN's factor prediction learned from too little: no
    better than the mean song's factors), ``""`` when nothing says so or it has no acoustic vector."""

    song_id: str
    title: str
    artist: str
    release: str
    year: int
    genre: str
    sources: tuple[str, ...]
    genre_scores: tuple[GenreScore, ...] = ()
    tags: tuple[tuple[str, float], ...] = ()
    genre_warning: str = ""   # why genre_scores should not be trusted ("" when nothing says so)
    acoustic_warning: str = ""   # why its acoustic vector should not be trusted ("" when nothing says so)

    @property
    def has_plays(self) -> bool:
        """Somebody played it: it has a collaborative (WMF) vector."""
        return COLLABORATIVE in self.sources

    @property
    def has_audio(self) -> bool:
        """It has audio, hence an acoustic (CNN-predicted) vector."""
        return ACOUSTIC in self.sources


@dataclass(frozen=True)
class HistorySong:
    """A song of a user's history: its catalog names, the plays counted for the user (a like
    counts as several) and the times they skipped it."""

    song_id: str
    title: str
    artist: str
    genre: str
    year: int
    plays: int = 0
    skips: int = 0


class NameCount(NamedTuple):
    """An artist or a genre of a user's history and the plays it has there."""

    name: str
    plays: int


@dataclass(frozen=True)
class History:
    """What PMRS knows of a user (:meth:`pmrs.Recommender.history`): the songs played, most
    played first (``limit`` of them), of ``played_songs`` in all; the songs liked, disliked and
    skipped and the artists hidden (:mod:`pmrs.live.feedback`); the top artists and genres by
    plays."""

    user_id: str
    played_songs: int
    songs: tuple[HistorySong, ...]
    liked: tuple[HistorySong, ...] = ()
    disliked: tuple[HistorySong, ...] = ()
    skipped: tuple[HistorySong, ...] = ()
    hidden_artists: tuple[str, ...] = ()
    top_artists: tuple[NameCount, ...] = ()
    top_genres: tuple[NameCount, ...] = ()


@dataclass(frozen=True)
class Appended:
    """An acknowledged write (:meth:`pmrs.Recommender.record_plays`): its sequence number in the
    write log, and whether the request id had been written before (then nothing new was written
    and ``seq`` is the first write's)."""

    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class AddedSong:
    """The result of :meth:`pmrs.Recommender.add_song`: the song as now known, its write's
    sequence number, and whether the request id had been written before (a retry: nothing new)."""

    song: Song
    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class SourceInfo:
    """One source of the bundle: its space, whether it covers songs without plays, its index
    (FAISS ``index_factory`` string and search parameters) and the recall@10 measured at build
    time, and its share of a default list."""

    name: str
    space: str
    covers_cold: bool
    spec: str
    vectors: int
    dimension: int
    search_params: dict
    recall_at_10: float
    default_share: float


@dataclass(frozen=True)
class ListInfo:
    """Default lists the bundle holds: requests of ``kind`` (``"recommend"`` or ``"similar"``)
    with these settings and no filters are answered by lookup."""

    kind: str
    k: int
    shares: dict
    diversity: float


@dataclass(frozen=True)
class BundleInfo:
    """What is being served: the bundle (version, build time, format, counts, sources, the model
    runs it was built from, its default lists), the request defaults in force, and the live state:
    the last write of the write log applied (``live_seq``), whether writes are taken, and which
    server answered (``""`` in process; over gRPC its address and process id, replicas sharing a
    bundle differ there)."""

    version: str
    created_at: str
    format_version: int
    users: int
    songs: int
    songs_with_plays: int
    songs_with_audio: int
    sources: list[SourceInfo]
    source_runs: dict
    default_lists: list[ListInfo]
    defaults: Defaults
    live_seq: int = 0
    accepts_writes: bool = False
    server: str = ""
    metrics_url: str = ""     # the answering server's Prometheus metrics ("" in process, or none)


@dataclass(frozen=True)
class GenreList:
    """The songs recommended under one genre, best first, each with the confidence that it
    belongs to the genre (``genre_confidences``, aligned with ``songs``), and ``confidence``: how
    much of the listener's recommendations lean to this genre (the genres' confidences sum to 1)."""

    genre: str
    confidence: float
    songs: list[ScoredSong]
    genre_confidences: list[float]


@dataclass(frozen=True)
class GenreRecommendations:
    """Recommendations under each genre, the genres in decreasing confidence."""

    genres: list[GenreList]
    bundle_version: str
    folded_in: bool = False
