from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_COLLABORATIVE: _ClassVar[Source]
    SOURCE_ACOUSTIC: _ClassVar[Source]
    SOURCE_BOTH: _ClassVar[Source]

class SimilarityMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIMILARITY_MODE_UNSPECIFIED: _ClassVar[SimilarityMode]
    SIMILARITY_MODE_COLLABORATIVE: _ClassVar[SimilarityMode]
    SIMILARITY_MODE_ACOUSTIC: _ClassVar[SimilarityMode]
    SIMILARITY_MODE_MIXED: _ClassVar[SimilarityMode]
    SIMILARITY_MODE_METADATA: _ClassVar[SimilarityMode]
    SIMILARITY_MODE_NEIGHBOURS: _ClassVar[SimilarityMode]

class FeedbackAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_ACTION_UNSPECIFIED: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_LIKE: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_SKIP: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_DISLIKE: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_HIDE_ARTIST: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_UNDO_SKIP: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_UNDO_DISLIKE: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_UNDO_HIDE_ARTIST: _ClassVar[FeedbackAction]
    FEEDBACK_ACTION_UNDO_LIKE: _ClassVar[FeedbackAction]
SOURCE_UNSPECIFIED: Source
SOURCE_COLLABORATIVE: Source
SOURCE_ACOUSTIC: Source
SOURCE_BOTH: Source
SIMILARITY_MODE_UNSPECIFIED: SimilarityMode
SIMILARITY_MODE_COLLABORATIVE: SimilarityMode
SIMILARITY_MODE_ACOUSTIC: SimilarityMode
SIMILARITY_MODE_MIXED: SimilarityMode
SIMILARITY_MODE_METADATA: SimilarityMode
SIMILARITY_MODE_NEIGHBOURS: SimilarityMode
FEEDBACK_ACTION_UNSPECIFIED: FeedbackAction
FEEDBACK_ACTION_LIKE: FeedbackAction
FEEDBACK_ACTION_SKIP: FeedbackAction
FEEDBACK_ACTION_DISLIKE: FeedbackAction
FEEDBACK_ACTION_HIDE_ARTIST: FeedbackAction
FEEDBACK_ACTION_UNDO_SKIP: FeedbackAction
FEEDBACK_ACTION_UNDO_DISLIKE: FeedbackAction
FEEDBACK_ACTION_UNDO_HIDE_ARTIST: FeedbackAction
FEEDBACK_ACTION_UNDO_LIKE: FeedbackAction

class Filters(_message.Message):
    __slots__ = ("genres", "min_year", "max_year", "exclude_artists")
    GENRES_FIELD_NUMBER: _ClassVar[int]
    MIN_YEAR_FIELD_NUMBER: _ClassVar[int]
    MAX_YEAR_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ARTISTS_FIELD_NUMBER: _ClassVar[int]
    genres: _containers.RepeatedScalarFieldContainer[str]
    min_year: int
    max_year: int
    exclude_artists: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, genres: _Optional[_Iterable[str]] = ..., min_year: _Optional[int] = ..., max_year: _Optional[int] = ..., exclude_artists: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "seed_song_ids", "k", "acoustic_share", "diversity", "include_played", "filters", "shares", "explain")
    class SharesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_SONG_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    ACOUSTIC_SHARE_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PLAYED_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    seed_song_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    acoustic_share: float
    diversity: float
    include_played: bool
    filters: Filters
    shares: _containers.ScalarMap[str, float]
    explain: bool
    def __init__(self, user_id: _Optional[str] = ..., seed_song_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., acoustic_share: _Optional[float] = ..., diversity: _Optional[float] = ..., include_played: _Optional[bool] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., shares: _Optional[_Mapping[str, float]] = ..., explain: _Optional[bool] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("song_id", "title", "artist", "weight")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    title: str
    artist: str
    weight: float
    def __init__(self, song_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("source", "rank", "share", "text", "evidence", "shared")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    source: str
    rank: int
    share: float
    text: str
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    shared: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source: _Optional[str] = ..., rank: _Optional[int] = ..., share: _Optional[float] = ..., text: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ..., shared: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoredSong(_message.Message):
    __slots__ = ("song_id", "title", "artist", "genre", "year", "score", "source", "sources", "reasons")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    title: str
    artist: str
    genre: str
    year: int
    score: float
    source: Source
    sources: _containers.RepeatedScalarFieldContainer[str]
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    def __init__(self, song_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., genre: _Optional[str] = ..., year: _Optional[int] = ..., score: _Optional[float] = ..., source: _Optional[_Union[Source, str]] = ..., sources: _Optional[_Iterable[str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("songs", "bundle_version", "folded_in", "precomputed")
    SONGS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FOLDED_IN_FIELD_NUMBER: _ClassVar[int]
    PRECOMPUTED_FIELD_NUMBER: _ClassVar[int]
    songs: _containers.RepeatedCompositeFieldContainer[ScoredSong]
    bundle_version: str
    folded_in: bool
    precomputed: bool
    def __init__(self, songs: _Optional[_Iterable[_Union[ScoredSong, _Mapping]]] = ..., bundle_version: _Optional[str] = ..., folded_in: _Optional[bool] = ..., precomputed: _Optional[bool] = ...) -> None: ...

class SimilarSongsRequest(_message.Message):
    __slots__ = ("song_id", "k", "mode", "acoustic_share", "diversity", "filters", "shares", "source", "explain")
    class SharesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACOUSTIC_SHARE_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    k: int
    mode: SimilarityMode
    acoustic_share: float
    diversity: float
    filters: Filters
    shares: _containers.ScalarMap[str, float]
    source: str
    explain: bool
    def __init__(self, song_id: _Optional[str] = ..., k: _Optional[int] = ..., mode: _Optional[_Union[SimilarityMode, str]] = ..., acoustic_share: _Optional[float] = ..., diversity: _Optional[float] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., shares: _Optional[_Mapping[str, float]] = ..., source: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class SimilarSongsResponse(_message.Message):
    __slots__ = ("songs", "bundle_version", "precomputed")
    SONGS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRECOMPUTED_FIELD_NUMBER: _ClassVar[int]
    songs: _containers.RepeatedCompositeFieldContainer[ScoredSong]
    bundle_version: str
    precomputed: bool
    def __init__(self, songs: _Optional[_Iterable[_Union[ScoredSong, _Mapping]]] = ..., bundle_version: _Optional[str] = ..., precomputed: _Optional[bool] = ...) -> None: ...

class RecommendByGenreRequest(_message.Message):
    __slots__ = ("user_id", "seed_song_ids", "k", "genres", "include_played")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_SONG_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PLAYED_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    seed_song_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    genres: _containers.RepeatedScalarFieldContainer[str]
    include_played: bool
    def __init__(self, user_id: _Optional[str] = ..., seed_song_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., genres: _Optional[_Iterable[str]] = ..., include_played: _Optional[bool] = ...) -> None: ...

class GenreSongs(_message.Message):
    __slots__ = ("genre", "confidence", "songs", "song_confidences")
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SONGS_FIELD_NUMBER: _ClassVar[int]
    SONG_CONFIDENCES_FIELD_NUMBER: _ClassVar[int]
    genre: str
    confidence: float
    songs: _containers.RepeatedCompositeFieldContainer[ScoredSong]
    song_confidences: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, genre: _Optional[str] = ..., confidence: _Optional[float] = ..., songs: _Optional[_Iterable[_Union[ScoredSong, _Mapping]]] = ..., song_confidences: _Optional[_Iterable[float]] = ...) -> None: ...

class RecommendByGenreResponse(_message.Message):
    __slots__ = ("genres", "bundle_version", "folded_in")
    GENRES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FOLDED_IN_FIELD_NUMBER: _ClassVar[int]
    genres: _containers.RepeatedCompositeFieldContainer[GenreSongs]
    bundle_version: str
    folded_in: bool
    def __init__(self, genres: _Optional[_Iterable[_Union[GenreSongs, _Mapping]]] = ..., bundle_version: _Optional[str] = ..., folded_in: _Optional[bool] = ...) -> None: ...

class RadioEvent(_message.Message):
    __slots__ = ("song_id", "action")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    action: FeedbackAction
    def __init__(self, song_id: _Optional[str] = ..., action: _Optional[_Union[FeedbackAction, str]] = ...) -> None: ...

class RadioRequest(_message.Message):
    __slots__ = ("song_id", "artist", "seed_song_ids", "user_id", "k", "token", "artist_gap", "diversity", "session", "explain")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    SEED_SONG_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ARTIST_GAP_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    artist: str
    seed_song_ids: _containers.RepeatedScalarFieldContainer[str]
    user_id: str
    k: int
    token: str
    artist_gap: int
    diversity: float
    session: _containers.RepeatedCompositeFieldContainer[RadioEvent]
    explain: bool
    def __init__(self, song_id: _Optional[str] = ..., artist: _Optional[str] = ..., seed_song_ids: _Optional[_Iterable[str]] = ..., user_id: _Optional[str] = ..., k: _Optional[int] = ..., token: _Optional[str] = ..., artist_gap: _Optional[int] = ..., diversity: _Optional[float] = ..., session: _Optional[_Iterable[_Union[RadioEvent, _Mapping]]] = ..., explain: _Optional[bool] = ...) -> None: ...

class RadioResponse(_message.Message):
    __slots__ = ("songs", "token", "bundle_version", "relaxed")
    SONGS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RELAXED_FIELD_NUMBER: _ClassVar[int]
    songs: _containers.RepeatedCompositeFieldContainer[ScoredSong]
    token: str
    bundle_version: str
    relaxed: bool
    def __init__(self, songs: _Optional[_Iterable[_Union[ScoredSong, _Mapping]]] = ..., token: _Optional[str] = ..., bundle_version: _Optional[str] = ..., relaxed: _Optional[bool] = ...) -> None: ...

class GetSongRequest(_message.Message):
    __slots__ = ("song_id",)
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    def __init__(self, song_id: _Optional[str] = ...) -> None: ...

class GenreScore(_message.Message):
    __slots__ = ("genre", "confidence")
    GENRE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    genre: str
    confidence: float
    def __init__(self, genre: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("tag", "weight")
    TAG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    tag: str
    weight: float
    def __init__(self, tag: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Song(_message.Message):
    __slots__ = ("song_id", "title", "artist", "release", "year", "genre", "has_plays", "has_audio", "genre_scores", "sources", "tags", "genre_warning", "acoustic_warning")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    HAS_PLAYS_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    GENRE_SCORES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    GENRE_WARNING_FIELD_NUMBER: _ClassVar[int]
    ACOUSTIC_WARNING_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    title: str
    artist: str
    release: str
    year: int
    genre: str
    has_plays: bool
    has_audio: bool
    genre_scores: _containers.RepeatedCompositeFieldContainer[GenreScore]
    sources: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    genre_warning: str
    acoustic_warning: str
    def __init__(self, song_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., release: _Optional[str] = ..., year: _Optional[int] = ..., genre: _Optional[str] = ..., has_plays: _Optional[bool] = ..., has_audio: _Optional[bool] = ..., genre_scores: _Optional[_Iterable[_Union[GenreScore, _Mapping]]] = ..., sources: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., genre_warning: _Optional[str] = ..., acoustic_warning: _Optional[str] = ...) -> None: ...

class GetSongResponse(_message.Message):
    __slots__ = ("song",)
    SONG_FIELD_NUMBER: _ClassVar[int]
    song: Song
    def __init__(self, song: _Optional[_Union[Song, _Mapping]] = ...) -> None: ...

class GetBundleInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("name", "spec", "vectors", "dimension", "search_params", "recall_at_10", "covers_cold", "space", "default_share")
    class SearchParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    SEARCH_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RECALL_AT_10_FIELD_NUMBER: _ClassVar[int]
    COVERS_COLD_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SHARE_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: str
    vectors: int
    dimension: int
    search_params: _containers.ScalarMap[str, str]
    recall_at_10: float
    covers_cold: bool
    space: str
    default_share: float
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[str] = ..., vectors: _Optional[int] = ..., dimension: _Optional[int] = ..., search_params: _Optional[_Mapping[str, str]] = ..., recall_at_10: _Optional[float] = ..., covers_cold: _Optional[bool] = ..., space: _Optional[str] = ..., default_share: _Optional[float] = ...) -> None: ...

class DefaultListInfo(_message.Message):
    __slots__ = ("kind", "k", "acoustic_share", "diversity", "shares")
    class SharesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    ACOUSTIC_SHARE_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    k: int
    acoustic_share: float
    diversity: float
    shares: _containers.ScalarMap[str, float]
    def __init__(self, kind: _Optional[str] = ..., k: _Optional[int] = ..., acoustic_share: _Optional[float] = ..., diversity: _Optional[float] = ..., shares: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Defaults(_message.Message):
    __slots__ = ("k", "shares", "diversity", "similar_diversity")
    class SharesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    K_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    k: int
    shares: _containers.ScalarMap[str, float]
    diversity: float
    similar_diversity: float
    def __init__(self, k: _Optional[int] = ..., shares: _Optional[_Mapping[str, float]] = ..., diversity: _Optional[float] = ..., similar_diversity: _Optional[float] = ...) -> None: ...

class GetBundleInfoResponse(_message.Message):
    __slots__ = ("live_sequence", "accepts_writes", "server", "metrics_url", "version", "created_at", "users", "songs", "songs_with_plays", "songs_with_audio", "indexes", "source_runs", "default_lists", "format_version", "defaults")
    class SourceRunsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LIVE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_WRITES_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    METRICS_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    SONGS_FIELD_NUMBER: _ClassVar[int]
    SONGS_WITH_PLAYS_FIELD_NUMBER: _ClassVar[int]
    SONGS_WITH_AUDIO_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_RUNS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LISTS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    live_sequence: int
    accepts_writes: bool
    server: str
    metrics_url: str
    version: str
    created_at: str
    users: int
    songs: int
    songs_with_plays: int
    songs_with_audio: int
    indexes: _containers.RepeatedCompositeFieldContainer[IndexInfo]
    source_runs: _containers.ScalarMap[str, str]
    default_lists: _containers.RepeatedCompositeFieldContainer[DefaultListInfo]
    format_version: int
    defaults: Defaults
    def __init__(self, live_sequence: _Optional[int] = ..., accepts_writes: _Optional[bool] = ..., server: _Optional[str] = ..., metrics_url: _Optional[str] = ..., version: _Optional[str] = ..., created_at: _Optional[str] = ..., users: _Optional[int] = ..., songs: _Optional[int] = ..., songs_with_plays: _Optional[int] = ..., songs_with_audio: _Optional[int] = ..., indexes: _Optional[_Iterable[_Union[IndexInfo, _Mapping]]] = ..., source_runs: _Optional[_Mapping[str, str]] = ..., default_lists: _Optional[_Iterable[_Union[DefaultListInfo, _Mapping]]] = ..., format_version: _Optional[int] = ..., defaults: _Optional[_Union[Defaults, _Mapping]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Play(_message.Message):
    __slots__ = ("song_id", "count")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    count: int
    def __init__(self, song_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class RecordPlaysRequest(_message.Message):
    __slots__ = ("user_id", "plays", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    plays: _containers.RepeatedCompositeFieldContainer[Play]
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., plays: _Optional[_Iterable[_Union[Play, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RecordPlaysResponse(_message.Message):
    __slots__ = ("sequence", "duplicate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    duplicate: bool
    def __init__(self, sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("user_id", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class HistorySong(_message.Message):
    __slots__ = ("song_id", "title", "artist", "genre", "year", "plays", "skips")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    SKIPS_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    title: str
    artist: str
    genre: str
    year: int
    plays: int
    skips: int
    def __init__(self, song_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., genre: _Optional[str] = ..., year: _Optional[int] = ..., plays: _Optional[int] = ..., skips: _Optional[int] = ...) -> None: ...

class NameCount(_message.Message):
    __slots__ = ("name", "plays")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    name: str
    plays: int
    def __init__(self, name: _Optional[str] = ..., plays: _Optional[int] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("user_id", "played_songs", "songs", "liked", "disliked", "skipped", "hidden_artists", "top_artists", "top_genres")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYED_SONGS_FIELD_NUMBER: _ClassVar[int]
    SONGS_FIELD_NUMBER: _ClassVar[int]
    LIKED_FIELD_NUMBER: _ClassVar[int]
    DISLIKED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_ARTISTS_FIELD_NUMBER: _ClassVar[int]
    TOP_ARTISTS_FIELD_NUMBER: _ClassVar[int]
    TOP_GENRES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    played_songs: int
    songs: _containers.RepeatedCompositeFieldContainer[HistorySong]
    liked: _containers.RepeatedCompositeFieldContainer[HistorySong]
    disliked: _containers.RepeatedCompositeFieldContainer[HistorySong]
    skipped: _containers.RepeatedCompositeFieldContainer[HistorySong]
    hidden_artists: _containers.RepeatedScalarFieldContainer[str]
    top_artists: _containers.RepeatedCompositeFieldContainer[NameCount]
    top_genres: _containers.RepeatedCompositeFieldContainer[NameCount]
    def __init__(self, user_id: _Optional[str] = ..., played_songs: _Optional[int] = ..., songs: _Optional[_Iterable[_Union[HistorySong, _Mapping]]] = ..., liked: _Optional[_Iterable[_Union[HistorySong, _Mapping]]] = ..., disliked: _Optional[_Iterable[_Union[HistorySong, _Mapping]]] = ..., skipped: _Optional[_Iterable[_Union[HistorySong, _Mapping]]] = ..., hidden_artists: _Optional[_Iterable[str]] = ..., top_artists: _Optional[_Iterable[_Union[NameCount, _Mapping]]] = ..., top_genres: _Optional[_Iterable[_Union[NameCount, _Mapping]]] = ...) -> None: ...

class RecordFeedbackRequest(_message.Message):
    __slots__ = ("user_id", "song_id", "action", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    song_id: str
    action: FeedbackAction
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., song_id: _Optional[str] = ..., action: _Optional[_Union[FeedbackAction, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RecordFeedbackResponse(_message.Message):
    __slots__ = ("sequence", "duplicate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    duplicate: bool
    def __init__(self, sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class AddSongRequest(_message.Message):
    __slots__ = ("song_id", "title", "artist", "release", "year", "genre", "tags", "audio", "audio_filename", "request_id")
    SONG_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FILENAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    song_id: str
    title: str
    artist: str
    release: str
    year: int
    genre: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    audio: bytes
    audio_filename: str
    request_id: str
    def __init__(self, song_id: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., release: _Optional[str] = ..., year: _Optional[int] = ..., genre: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., audio: _Optional[bytes] = ..., audio_filename: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddSongResponse(_message.Message):
    __slots__ = ("song", "sequence", "duplicate")
    SONG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    song: Song
    sequence: int
    duplicate: bool
    def __init__(self, song: _Optional[_Union[Song, _Mapping]] = ..., sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...
