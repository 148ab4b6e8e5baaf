"""pmrs.remote and pmrs.channel against a fake server on a real port: what the remote recommender
sends, how status codes come back as the library's exceptions, retries and deadlines. (That its
answers equal the in-process ones is tests/test_api.py's.)"""

from __future__ import annotations

import socket
import time

import grpc
import pytest
from conftest import running_fake
from fakeserver import FakeRecommender

import pmrs
from pmrs.v1 import recommender_pb2 as pb


@pytest.fixture
def fake():
    with running_fake(FakeRecommender()) as servicer:
        yield servicer
        servicer.release.set()


@pytest.fixture
def rec(fake):
    with pmrs.connect(fake.target, timeout=2.0, retries=3, backoff=0.01, max_backoff=0.05) as r:
        yield r


# -- what is sent -----------------------------------------------------------------------------

def test_recommend_sends_the_settings_given_and_leaves_the_rest_to_the_server(rec, fake):
    recs = rec.recommend("u1", k=3, shares={"acoustic": 0.5},
                         filters=pmrs.Filters(genres=("rock",), min_year=1990, exclude_artists=("Nobody",)))
    assert isinstance(recs, pmrs.Recommendations) and [type(s) for s in recs.songs] == [pmrs.ScoredSong] * 3
    assert recs.songs[1] == pmrs.ScoredSong("SOBBB", "Second Song", "Beta Band", "jazz", 0, 1.25,
                                            ("collaborative", "acoustic"))
    req = fake.requests["Recommend"]
    assert req.user_id == "u1" and req.k == 3 and not req.include_played and dict(req.shares) == {"acoustic": 0.5}
    assert not req.HasField("diversity") and not req.HasField("acoustic_share")  # unset: the server's defaults
    assert list(req.filters.genres) == ["rock"] and req.filters.min_year == 1990
    assert req.filters.max_year == 0 and list(req.filters.exclude_artists) == ["Nobody"]
    rec.recommend(seed_song_ids=["SOAAA", "SOBBB"], diversity=0.0, include_played=True, filters=pmrs.Filters())
    req = fake.requests["Recommend"]
    assert req.user_id == "" and list(req.seed_song_ids) == ["SOAAA", "SOBBB"] and req.k == 0
    assert req.HasField("diversity") and req.diversity == 0.0 and req.include_played
    assert not req.HasField("filters")   # filters that restrict nothing are not sent


@pytest.mark.parametrize("mode, enum, source", [("mixed", pb.SIMILARITY_MODE_MIXED, ""),
                                                ("collaborative", pb.SIMILARITY_MODE_COLLABORATIVE, "collaborative"),
                                                ("acoustic", pb.SIMILARITY_MODE_ACOUSTIC, "acoustic"),
                                                ("lyrics", pb.SIMILARITY_MODE_UNSPECIFIED, "lyrics")])
def test_similar_songs_names_the_mode(rec, fake, mode, enum, source):
    recs = rec.similar_songs("SOAAA", k=5, mode=mode)
    assert recs.song_ids == ["SOBBB", "SOCCC"]
    req = fake.requests["SimilarSongs"]
    assert (req.mode, req.source, req.k) == (enum, source, 5)


def test_radio_sends_the_start_the_token_and_the_session_and_leaves_unset_settings_to_the_server(rec, fake):
    got = rec.radio(song_id="SOAAA", user_id="u1", k=2)
    assert got == pmrs.RadioSongs([pmrs.ScoredSong("SOAAA", "First Song", "Alpha", "rock", 1999, 2.5, ("collaborative",)),
                                   pmrs.ScoredSong("SOBBB", "Second Song", "Beta Band", "jazz", 0, 1.25,
                                                   ("collaborative", "acoustic"))], "r1.next", "v-test", relaxed=True)
    req = fake.requests["Radio"]
    assert (req.song_id, req.user_id, req.k, req.token, req.artist) == ("SOAAA", "u1", 2, "", "")
    assert not req.HasField("artist_gap") and not req.HasField("diversity") and not req.session
    rec.radio(token=got.token, artist_gap=0, diversity=0.0, session=[("SOAAA", "skip"), ("SOBBB", "dislike"),
                                                                     ("SOCCC", "like")])
    req = fake.requests["Radio"]
    assert req.token == "r1.next" and req.HasField("artist_gap") and req.artist_gap == 0 and req.HasField("diversity")
    assert [(e.song_id, e.action) for e in req.session] == [
        ("SOAAA", pb.FEEDBACK_ACTION_SKIP), ("SOBBB", pb.FEEDBACK_ACTION_DISLIKE), ("SOCCC", pb.FEEDBACK_ACTION_LIKE)]
    calls = fake.calls["Radio"]
    for bad in ({"session": [("SOAAA", "hide_artist")]}, {"artist_gap": 51}, {"artist_gap": True}):
        with pytest.raises(pmrs.InvalidArgument):
            rec.radio(song_id="SOAAA", **bad)
    assert fake.calls["Radio"] == calls       # refused before any call


def test_arguments_refused_before_any_call(rec, fake):
    with pytest.raises(pmrs.InvalidArgument, match="mode"):
        rec.similar_songs("SOAAA", mode="")
    with pytest.raises(pmrs.InvalidArgument):
        rec.recommend("u1", k=2**40)                    # more than the message's int32 holds
    with pytest.raises(pmrs.InvalidArgument, match="whole"):
        rec.record_plays("u1", {"SOAAA": 1.5})
    with pytest.raises(pmrs.InvalidArgument, match="empty"):
        rec.add_song("SONEW", audio=b"")
    with pytest.raises(TypeError):
        rec.recommend(seed_song_ids="SOAAA")
    assert not fake.calls


def test_writes_carry_a_request_id(rec, fake):
    done = rec.record_plays("u1", [("SOAAA", 2)])
    assert done == pmrs.Appended(7, duplicate=False)
    first = fake.requests["RecordPlays"].request_id
    rec.record_plays("u1", [("SOAAA", 2)])
    assert first and fake.requests["RecordPlays"].request_id != first   # a new id per call, the same per retry
    rec.record_plays("u1", [("SOAAA", 2)], request_id="mine")
    assert fake.requests["RecordPlays"].request_id == "mine"


def test_song_info_and_ping(rec):
    song = rec.song("SOAAA")
    assert song.release == "Album" and song.has_plays and song.has_audio
    assert song.genre_scores == (pmrs.GenreScore("rock", 0.75), pmrs.GenreScore("jazz", 0.25))
    assert song.tags == (("indie rock", 100.0), ("90s", 42.5))
    assert song.genre_warning == "the genre head learned from too little: 2 genres"
    assert song.acoustic_warning == "the acoustic model's factor prediction learned from too little: a test"
    info = rec.info()
    assert (info.version, info.users, info.format_version) == ("v-test", 1000, 3)
    assert (info.live_seq, info.accepts_writes, info.server) == (12, True, "fake")
    assert info.sources[1].search_params == {"nprobe": 8}   # (the proto's map carries strings)
    assert [s.default_share for s in info.sources] == [0.8, 0.2]   # float32 on the wire, read back as set
    assert info.default_lists == [pmrs.ListInfo("recommend", 10, {"collaborative": 0.8, "acoustic": 0.2}, 0.0)]
    assert info.defaults == pmrs.Defaults(k=10, shares={"acoustic": 0.2})
    assert (rec.version, rec.sources, rec.live_seq) == ("v-test", ["collaborative", "acoustic"], 12)
    assert 0 < rec.ping() < 2.0 and rec.refresh() == 0


# -- errors, retries, deadlines ------------------------------------------------------------

@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK],
                         ids=lambda c: c.name)
def test_every_status_code_comes_back_as_a_pmrs_error(fake, code):
    with pmrs.connect(fake.target, timeout=2.0, retries=0) as rec:
        with pytest.raises(pmrs.PMRSError) as exc:
            rec.song(f"ERR_{code.name}")
    assert exc.value.code == code.name
    assert str(exc.value) == exc.value.message == f"fake {code.name} for ERR_{code.name}"


def test_not_found_is_not_retried(rec, fake):
    with pytest.raises(pmrs.NotFound) as exc:
        rec.recommend("nobody")
    assert str(exc.value) == "unknown user 'nobody'"
    assert fake.calls["Recommend"] == 1


def test_unavailable_is_retried_until_success(rec, fake):
    fake.unavailable_left = 2
    rec.ping()
    assert fake.calls["Ping"] == 3


def test_permanent_unavailable_fails_after_the_retries(rec, fake):
    fake.unavailable_left = 100
    with pytest.raises(pmrs.Unavailable) as exc:
        rec.ping()
    assert str(exc.value) == "no bundle loaded yet"
    assert fake.calls["Ping"] == 1 + 3


def test_unreachable_server_is_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pmrs.connect(f"127.0.0.1:{port}", timeout=2.0, retries=2, backoff=0.01, max_backoff=0.02) as rec:
        with pytest.raises(pmrs.Unavailable):
            rec.ping()


def test_deadline_exceeded(fake):
    fake.ping_delay_s = 5.0
    t0 = time.perf_counter()
    with pmrs.connect(fake.target, timeout=0.2) as rec:
        with pytest.raises(pmrs.DeadlineExceeded):
            rec.ping()
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("kwargs", [{"retries": 5}, {"retries": -1}, {"timeout": 0}, {"backoff": 0},
                                    {"cert_file": "c.pem"}])
def test_bad_settings(kwargs):
    with pytest.raises(pmrs.InvalidArgument):   # (a ValueError too)
        pmrs.connect("127.0.0.1:1", **kwargs)

