"""A fake ``pmrs.v1.Recommender`` service with canned answers, for the client-side tests (the
remote recommender's translation, retries and deadlines; ``pmrs-client``)."""

import threading
from collections import Counter

import grpc

from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

SONGS = [
    pb.ScoredSong(song_id="SOAAA", title="First Song", artist="Alpha", genre="rock", year=1999,
                  score=2.5, source=pb.SOURCE_COLLABORATIVE, sources=["collaborative"]),
    pb.ScoredSong(song_id="SOBBB", title="Second Song", artist="Beta Band", genre="jazz",
                  year=0, score=1.25, source=pb.SOURCE_BOTH, sources=["collaborative", "acoustic"]),
    pb.ScoredSong(song_id="SOCCC", title="Cold One", artist="Gamma", genre="", year=2024,
                  score=0.5, source=pb.SOURCE_ACOUSTIC, sources=["acoustic"]),
]


class FakeRecommender(pb_grpc.RecommenderServicer):
    """Canned answers; ``ERR_<CODE>`` ids abort with that code; counts every call and keeps the
    last request of each method."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.requests: dict[str, object] = {}
        self.unavailable_left = 0  # Ping answers UNAVAILABLE this many times first
        self.ping_delay_s = 0.0
        self.release = threading.Event()

    def _enter(self, method: str, request, context, key: str = "") -> None:
        with self.lock:
            self.calls[method] += 1
            self.requests[method] = request
        if key.startswith("ERR_"):
            context.abort(getattr(grpc.StatusCode, key[4:]), f"fake {key[4:]} for {key}")

    def Recommend(self, request, context):
        self._enter("Recommend", request, context, request.user_id)
        if request.user_id == "nobody":
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown user 'nobody'")
        return pb.RecommendResponse(songs=SONGS[: request.k or 10], bundle_version="v-test",
                                    folded_in=not request.user_id)

    def SimilarSongs(self, request, context):
        self._enter("SimilarSongs", request, context, request.song_id)
        return pb.SimilarSongsResponse(songs=SONGS[1:], bundle_version="v-test")

    def Radio(self, request, context):
        self._enter("Radio", request, context, request.song_id)
        return pb.RadioResponse(songs=SONGS[:2], token="r1.next", bundle_version="v-test", relaxed=True)

    def RecordPlays(self, request, context):
        self._enter("RecordPlays", request, context, request.user_id)
        return pb.RecordPlaysResponse(sequence=7)

    def GetSong(self, request, context):
        self._enter("GetSong", request, context, request.song_id)
        return pb.GetSongResponse(song=pb.Song(
            song_id=request.song_id, title="First Song", artist="Alpha", release="Album",
            year=1999, genre="rock", has_plays=True, has_audio=True, sources=["collaborative", "acoustic"],
            genre_scores=[pb.GenreScore(genre="rock", confidence=0.75),
                          pb.GenreScore(genre="jazz", confidence=0.25)],
            tags=[pb.Tag(tag="indie rock", weight=100), pb.Tag(tag="90s", weight=42.5)],
            genre_warning="the genre head learned from too little: 2 genres",
            acoustic_warning="the acoustic model's factor prediction learned from too little: a test"))

    def GetBundleInfo(self, request, context):
        self._enter("GetBundleInfo", request, context)
        return pb.GetBundleInfoResponse(
            version="v-test", created_at="2026-01-02T03:04:05Z", users=1000, songs=5000,
            songs_with_plays=4000, songs_with_audio=3000, source_runs={"wmf": "w1", "cnn": "c1"},
            indexes=[pb.IndexInfo(name="collaborative", spec="Flat", vectors=4000, dimension=32,
                                  recall_at_10=1.0, space="wmf", default_share=0.8),
                     pb.IndexInfo(name="acoustic", spec="IVF64,Flat", vectors=3000, dimension=32,
                                  search_params={"nprobe": "8"}, recall_at_10=0.97, space="wmf",
                                  covers_cold=True, default_share=0.2)],
            default_lists=[pb.DefaultListInfo(kind="recommend", k=10, acoustic_share=0.2,
                                              shares={"collaborative": 0.8, "acoustic": 0.2})],
            defaults=pb.Defaults(k=10, shares={"acoustic": 0.2}, diversity=0.0, similar_diversity=0.0),
            format_version=3, live_sequence=12, accepts_writes=True, server="fake")

    def Ping(self, request, context):
        self._enter("Ping", request, context)
        with self.lock:
            fail = self.unavailable_left > 0
            self.unavailable_left -= fail
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no bundle loaded yet")
        if self.ping_delay_s:
            self.release.wait(self.ping_delay_s)
        return pb.PingResponse()
