"""clients.stub (PMRSClient) and clients.cli (pmrs-client) against a fake server on a real port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from conftest import running_fake

from clients import cli
from clients.stub import (BundleInfo, GenreScore, IndexInfo, PMRSClient, PMRSError,
                          Recommendations, SongInfo, SongResult)
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

SONGS = [
    pb.ScoredSong(song_id="SOAAA", title="First Song", artist="Alpha", genre="rock", year=1999,
                  score=2.5, source=pb.SOURCE_COLLABORATIVE),
    pb.ScoredSong(song_id="SOBBB", title="Second Song", artist="Beta Band", genre="jazz",
                  year=0, score=1.25, source=pb.SOURCE_BOTH),
    pb.ScoredSong(song_id="SOCCC", title="Cold One", artist="Gamma", genre="", year=2024,
                  score=0.5, source=pb.SOURCE_ACOUSTIC),
]


class FakeRecommender(pb_grpc.RecommenderServicer):
    """Canned answers; ``ERR_<CODE>`` ids abort with that code; counts every call."""

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

    def GetSong(self, request, context):
        self._enter("GetSong", request, context, request.song_id)
        return pb.GetSongResponse(song=pb.Song(
            song_id=request.song_id, title="First Song", artist="Alpha", release="Album",
            year=1999, genre="rock", has_plays=True, has_audio=True,
            genre_scores=[pb.GenreScore(genre="rock", confidence=0.75),
                          pb.GenreScore(genre="jazz", confidence=0.25)]))

    def GetBundleInfo(self, request, context):
        self._enter("GetBundleInfo", request, context)
        return pb.GetBundleInfoResponse(
            version="v-test", created_at="2026-01-02T03:04:05Z", users=1000, songs=5000,
            songs_with_plays=4000, songs_with_audio=3000, source_runs={"wmf": "w1", "cnn": "c1"},
            indexes=[pb.IndexInfo(name="collaborative", spec="Flat", vectors=4000, dimension=32,
                                  recall_at_10=1.0),
                     pb.IndexInfo(name="acoustic", spec="IVF64,Flat", vectors=3000, dimension=32,
                                  search_params={"nprobe": "8"}, recall_at_10=0.97, space="acoustic",
                                  covers_cold=True, default_share=0.2)],
            default_lists=[pb.DefaultListInfo(kind="recommend", k=10, acoustic_share=0.2)])

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


@pytest.fixture
def fake():
    with running_fake(FakeRecommender()) as servicer:
        yield servicer
        servicer.release.set()


@pytest.fixture
def client(fake):
    with PMRSClient(fake.target, timeout_s=2.0, retries=3, backoff_s=0.01,
                    max_backoff_s=0.05) as c:
        yield c


# -- typed results --------------------------------------------------------------------------

def test_recommend_returns_plain_dataclasses(client, fake):
    recs = client.recommend("u1", k=3, acoustic_share=0.5, genres=["rock"], min_year=1990,
                            exclude_artists=["Nobody"])
    assert isinstance(recs, Recommendations)
    assert recs.bundle_version == "v-test" and recs.folded_in is False
    assert [type(s) for s in recs.songs] == [SongResult] * 3
    assert recs.songs[0] == SongResult("SOAAA", "First Song", "Alpha", "rock", 1999, 2.5,
                                       "collaborative")
    assert [s.source for s in recs.songs] == ["collaborative", "both", "acoustic"]
    req = fake.requests["Recommend"]
    assert req.user_id == "u1" and req.k == 3 and not req.include_played
    assert req.HasField("acoustic_share") and req.acoustic_share == 0.5
    assert not req.HasField("diversity")  # unset: the server's default
    assert list(req.filters.genres) == ["rock"] and req.filters.min_year == 1990
    assert req.filters.max_year == 0 and list(req.filters.exclude_artists) == ["Nobody"]


def test_recommend_from_seeds_folds_in(client, fake):
    recs = client.recommend(seed_song_ids=["SOAAA", "SOBBB"], k=2, diversity=0.0,
                            include_played=True)
    assert recs.folded_in is True and len(recs.songs) == 2
    req = fake.requests["Recommend"]
    assert req.user_id == "" and list(req.seed_song_ids) == ["SOAAA", "SOBBB"]
    assert req.HasField("diversity") and req.diversity == 0.0 and req.include_played
    with pytest.raises(TypeError):
        client.recommend(seed_song_ids="SOAAA")  # a bare string is not a list of ids


@pytest.mark.parametrize("mode, enum", [("mixed", pb.SIMILARITY_MODE_MIXED),
                                        ("collaborative", pb.SIMILARITY_MODE_COLLABORATIVE),
                                        ("acoustic", pb.SIMILARITY_MODE_ACOUSTIC)])
def test_similar_maps_mode(client, fake, mode, enum):
    songs = client.similar("SOAAA", k=5, mode=mode, genres=["jazz"], max_year=2000)
    assert [s.song_id for s in songs] == ["SOBBB", "SOCCC"]
    assert all(isinstance(s, SongResult) for s in songs)
    req = fake.requests["SimilarSongs"]
    assert req.mode == enum and req.k == 5 and req.filters.max_year == 2000
    assert not req.HasField("acoustic_share")


def test_similar_mode_names_a_source(client, fake):
    with pytest.raises(ValueError, match="mode"):
        client.similar("SOAAA", mode="")
    assert fake.calls["SimilarSongs"] == 0
    client.similar("SOAAA", mode="lyrics", shares={"acoustic": 0.5})
    req = fake.requests["SimilarSongs"]
    assert req.source == "lyrics" and dict(req.shares) == {"acoustic": 0.5}


def test_song_bundle_info_ping(client):
    song = client.song("SOAAA")
    assert isinstance(song, SongInfo) and song.song_id == "SOAAA" and song.release == "Album"
    assert song.genre_scores == [GenreScore("rock", 0.75), GenreScore("jazz", 0.25)]
    info = client.bundle_info()
    assert isinstance(info, BundleInfo) and info.version == "v-test" and info.users == 1000
    assert info.source_runs == {"wmf": "w1", "cnn": "c1"}
    assert [type(i) for i in info.indexes] == [IndexInfo, IndexInfo]
    assert info.indexes[1].search_params == {"nprobe": "8"}
    assert info.indexes[1].recall_at_10 == pytest.approx(0.97)
    assert (info.indexes[1].space, info.indexes[1].covers_cold, info.indexes[1].default_share) == ("acoustic", True, 0.2)
    assert (info.indexes[0].space, info.indexes[0].covers_cold) == ("", False)
    assert [(d.kind, d.k, d.acoustic_share, d.diversity) for d in info.default_lists] == \
        [("recommend", 10, 0.2, 0.0)]
    assert 0 < client.ping() < 2.0


# -- errors, retries, deadlines ------------------------------------------------------------

@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK],
                         ids=lambda c: c.name)
def test_every_status_code_surfaces_as_pmrs_error(fake, code):
    with PMRSClient(fake.target, timeout_s=2.0, retries=0) as client:
        with pytest.raises(PMRSError) as exc:
            client.song(f"ERR_{code.name}")
    assert exc.value.code == code.name
    assert exc.value.message == f"fake {code.name} for ERR_{code.name}"
    assert str(exc.value) == f"{code.name}: {exc.value.message}"


def test_not_found_is_not_retried(client, fake):
    with pytest.raises(PMRSError) as exc:
        client.recommend("nobody")
    assert exc.value.code == "NOT_FOUND" and "nobody" in exc.value.message
    assert fake.calls["Recommend"] == 1


def test_unavailable_is_retried_until_success(client, fake):
    fake.unavailable_left = 2
    client.ping()
    assert fake.calls["Ping"] == 3


def test_permanent_unavailable_fails_after_the_retries(client, fake):
    fake.unavailable_left = 100
    with pytest.raises(PMRSError) as exc:
        client.ping()
    assert exc.value.code == "UNAVAILABLE" and exc.value.message == "no bundle loaded yet"
    assert fake.calls["Ping"] == 1 + 3


def test_unreachable_server_is_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with PMRSClient(f"127.0.0.1:{port}", timeout_s=2.0, retries=2, backoff_s=0.01,
                    max_backoff_s=0.02) as client:
        with pytest.raises(PMRSError) as exc:
            client.ping()
    assert exc.value.code == "UNAVAILABLE"


def test_deadline_exceeded(fake):
    fake.ping_delay_s = 5.0
    t0 = time.perf_counter()
    with PMRSClient(fake.target, timeout_s=0.2) as client:
        with pytest.raises(PMRSError) as exc:
            client.ping()
    assert exc.value.code == "DEADLINE_EXCEEDED"
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("kwargs", [{"retries": 5}, {"retries": -1}, {"timeout_s": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        PMRSClient("127.0.0.1:1", **kwargs)


# -- command line --------------------------------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_recommend_table(fake, capsys):
    code, out, err = run_cli(capsys, "--target", fake.target, "recommend", "u1", "-k", "3",
                             "--acoustic-share", "0.4", "--genre", "rock", "jazz")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("bundle v-test")
    header = lines[1].split()
    assert header[:7] == ["rank", "title", "artist", "genre", "year", "score", "sources"]
    assert lines[2].split() == ["1", "First", "Song", "Alpha", "rock", "1999", "2.500",
                                "collaborative", "SOAAA"]
    assert lines[3].split() == ["2", "Second", "Song", "Beta", "Band", "jazz", "-", "1.250",
                                "both", "SOBBB"]
    assert "SOCCC" in lines[4] and "acoustic" in lines[4]
    # aligned: every row's song id starts in the same column as the header's
    col = lines[1].index("song id")
    assert all(line[col:col + 2] == "SO" for line in lines[2:5])
    req = fake.requests["Recommend"]
    assert req.acoustic_share == pytest.approx(0.4) and list(req.filters.genres) == ["rock", "jazz"]


def test_cli_recommend_seeds_and_json(fake, capsys):
    code, out, _ = run_cli(capsys, "--target", fake.target, "--json", "recommend", "--seed",
                           "SOAAA", "SOBBB", "--include-played")
    assert code == 0
    obj = json.loads(out)
    assert obj["folded_in"] is True and obj["bundle_version"] == "v-test"
    assert obj["songs"][0] == {"song_id": "SOAAA", "title": "First Song", "artist": "Alpha",
                               "genre": "rock", "year": 1999, "score": 2.5,
                               "source": "collaborative", "sources": []}
    assert list(fake.requests["Recommend"].seed_song_ids) == ["SOAAA", "SOBBB"]


def test_cli_similar_song_info(fake, capsys):
    code, out, _ = run_cli(capsys, "similar", "SOAAA", "--mode", "acoustic", "-k", "2",
                           "--target", fake.target)  # flags after the command work too
    assert code == 0 and "SOBBB" in out and "Cold One" in out
    assert fake.requests["SimilarSongs"].mode == pb.SIMILARITY_MODE_ACOUSTIC
    code, out, _ = run_cli(capsys, "--target", fake.target, "song", "SOAAA")
    assert code == 0 and "First Song" in out and "rock 0.75" in out
    code, out, _ = run_cli(capsys, "--target", fake.target, "info")
    assert code == 0 and "v-test" in out and "IVF64,Flat" in out and "nprobe=8" in out
    assert "recommend lists  precomputed for k=10, acoustic_share=0.2, diversity=0" in out
    acoustic_row = next(line for line in out.splitlines() if line.startswith("acoustic"))
    assert acoustic_row.split()[-2:] == ["0.20", "yes"]   # its default share, it holds cold songs
    code, out, _ = run_cli(capsys, "--target", fake.target, "info", "--json")
    assert code == 0 and json.loads(out)["indexes"][0]["name"] == "collaborative"


def test_cli_errors(fake, capsys):
    code, out, err = run_cli(capsys, "--target", fake.target, "recommend", "nobody")
    assert code == 1 and out == ""
    assert err == "pmrs-client recommend: NOT_FOUND: unknown user 'nobody'\n"
    code, _, err = run_cli(capsys, "--target", fake.target, "song", "ERR_INVALID_ARGUMENT")
    assert code == 1 and err.startswith("pmrs-client song: INVALID_ARGUMENT: ")


@pytest.mark.parametrize("argv", [[], ["recommend", "u1", "--share", "acoustic"], ["recommend", "u1", "--share", "=0.2"], ["frobnicate"],
                                  ["recommend", "u1", "-k", "many"],
                                  ["--retries", "9", "info"]])
def test_cli_usage_errors_exit_2(capsys, argv):
    assert cli.main(argv) == 2


def test_installed_entry_point(fake):
    exe = Path(sys.executable).parent / "pmrs-client"
    if not exe.exists():
        pytest.skip("pmrs-client not installed in this environment")
    done = subprocess.run([str(exe), "--target", fake.target, "song", "ERR_NOT_FOUND"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == "pmrs-client song: NOT_FOUND: fake NOT_FOUND for ERR_NOT_FOUND"
