"""pmrs-server end to end over real ports: a server process on a tiny bundle, every RPC and every
status code, health, reflection, a bundle switch under traffic, SIGHUP, SIGTERM; and in-process
(``pmrs_server.main.serve``) draining and deadlines with a deliberately slow bundle."""

import shutil
import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from pmrs import Recommender
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.serving.contract import current_bundle
from pmrs.serving.bundle import Bundle
from pmrs.serving.recommend import Filters, recommend_for_vector, similar_songs
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc
from pmrs_server.main import serve

from servers import ServerProcess, code_of, wait_for  # noqa: E402  (tests/servers.py)

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "pmrs.v1.Recommender"


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    """A copy of the tiny work directory with WMF and CNN runs (no bundle yet; the tests build
    bundles in it)."""
    work = tmp_path_factory.mktemp("serving") / "work"
    shutil.copytree(serving_workdir, work)
    return work


@pytest.fixture(scope="module")
def bundle_dir(work):
    # two sources, as the expected answers below are written (tests/test_metadata_source.py: three)
    return build_bundle(work, IndexerConfig(recall_queries=50, metadata=False), show_progress=False)


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    b = Bundle.open(bundle_dir)
    yield b
    b.close()


@pytest.fixture(scope="module")
def server(work, bundle_dir, tmp_path_factory):
    s = ServerProcess(work, tmp_path_factory.mktemp("log") / "server.log", "--poll-seconds", "0.2",
                      "--workers", "8")
    yield s
    if s.proc.poll() is None:
        s.kill()


def some_user(bundle):
    return bundle.user_ids[3].decode()


def rows_by_kind(bundle):
    """(a song with plays and audio, a cold song: audio only) as rows."""
    warm = cold = None
    for row in range(bundle.n_songs):
        has_c, has_a = bundle.song_vector("collaborative", row) is not None, bundle.song_vector("acoustic", row) is not None
        if has_c and has_a and warm is None:
            warm = row
        if has_a and not has_c and cold is None:
            cold = row
    assert warm is not None and cold is not None
    return warm, cold


# --- the RPCs ------------------------------------------------------------------------------------


def test_bundle_info(server, bundle):
    info = server.stub.GetBundleInfo(pb.GetBundleInfoRequest())
    m = bundle.manifest
    assert info.version == bundle.version and info.created_at == m["created_at"]
    assert (info.users, info.songs) == (200, bundle.n_songs)
    assert info.songs_with_audio == m["counts"]["songs_with_audio"] == 80
    assert info.songs_with_plays == m["counts"]["songs_with_plays"]
    assert {ix.name for ix in info.indexes} == {"collaborative", "acoustic"}
    for ix in info.indexes:
        assert ix.spec == "Flat" and ix.dimension == 8 and 0.95 <= ix.recall_at_10 <= 1.0
    assert info.source_runs["wmf"].endswith("w1") and info.source_runs["cnn"].endswith("c1")
    assert [(d.kind, d.k, round(d.acoustic_share, 6), d.diversity) for d in info.default_lists] == \
        [("recommend", 10, 0.2, 0.0), ("similar", 10, 0.2, 0.0)]


def _answer(songs):
    return [(s.song_id, s.title, s.artist, s.genre, s.year, round(s.score, 5), tuple(s.sources)) for s in songs]


def test_server_answers_equal_the_python_api(server, bundle):
    # every default list (every user's Recommend, every song's SimilarSongs) and a sample of
    # computed requests: the server gives what pmrs.Recommender gives over the same bundle
    rec = Recommender(bundle)
    for u in range(bundle.n_users):
        user = bundle.user_ids[u].decode()
        assert _answer(server.stub.Recommend(pb.RecommendRequest(user_id=user)).songs) == \
            _answer(rec.recommend(user).songs), user
    for r in range(bundle.n_songs):
        song = bundle.song_id(r)
        assert _answer(server.stub.SimilarSongs(pb.SimilarSongsRequest(song_id=song)).songs) == \
            _answer(rec.similar_songs(song).songs), song
    genre = bundle.songs([0])[0]["genre"]
    for u in range(0, bundle.n_users, 17):
        user = bundle.user_ids[u].decode()
        for req, kwargs in ((dict(k=25, acoustic_share=0.5, diversity=0.4), dict(k=25, shares={"acoustic": 0.5},
                                                                                   diversity=0.4)),
                            (dict(shares={"acoustic": 0.7}), dict(shares={"acoustic": 0.7})),
                            (dict(include_played=True, k=5), dict(include_played=True, k=5)),
                            (dict(filters=pb.Filters(genres=[genre])), dict(filters=Filters(genres=(genre,))))):
            got = server.stub.Recommend(pb.RecommendRequest(user_id=user, **req))
            want = rec.recommend(user, **kwargs)
            assert not want.precomputed and _answer(got.songs) == _answer(want.songs), (user, req)
    seeds = [bundle.song_id(r) for r in range(0, bundle.n_songs, 9)]
    got = server.stub.Recommend(pb.RecommendRequest(seed_song_ids=seeds, k=12))
    assert got.folded_in and _answer(got.songs) == _answer(rec.recommend(seed_song_ids=seeds, k=12).songs)
    for r in range(0, bundle.n_songs, 11):
        song = bundle.song_id(r)
        for mode, name in ((pb.SIMILARITY_MODE_ACOUSTIC, "acoustic"), (pb.SIMILARITY_MODE_MIXED, "mixed")):
            got = server.stub.SimilarSongs(pb.SimilarSongsRequest(song_id=song, mode=mode, k=7, diversity=0.5))
            assert _answer(got.songs) == _answer(rec.similar_songs(song, k=7, mode=name, diversity=0.5).songs)


def test_recommend_by_genre_over_grpc(server, bundle):
    user = bundle.user_ids[11].decode()
    resp = server.stub.RecommendByGenre(pb.RecommendByGenreRequest(user_id=user, k=3), timeout=10)
    want = Recommender(bundle).recommend_by_genre(user, k=3)
    assert resp.genres and [g.genre for g in resp.genres] == [g.genre for g in want.genres]
    assert [[s.song_id for s in g.songs] for g in resp.genres] == [[s.song_id for s in g.songs] for g in want.genres]
    code, details = code_of(server.stub.RecommendByGenre, pb.RecommendByGenreRequest(user_id="nobody"))
    assert code == grpc.StatusCode.NOT_FOUND
    # pmrs-client shows the same lists (the remote recommender's: tests/test_api.py)
    from pmrs_clients.cli import main as client_main

    assert client_main(["--target", server.address, "genres", user, "-k", "3"]) == 0


def test_answers_never_hold_nan_or_inf(server, bundle):
    genre = bundle.songs([0])[0]["genre"]
    scores = []
    for u in range(0, bundle.n_users, 3):
        user = bundle.user_ids[u].decode()
        for req in (pb.RecommendRequest(user_id=user), pb.RecommendRequest(user_id=user, k=200, diversity=1.0),
                    pb.RecommendRequest(user_id=user, acoustic_share=1.0, filters=pb.Filters(genres=[genre]))):
            scores += [s.score for s in server.stub.Recommend(req).songs]
    for r in range(bundle.n_songs):
        for mode in (pb.SIMILARITY_MODE_MIXED, pb.SIMILARITY_MODE_ACOUSTIC):
            scores += [s.score for s in server.stub.SimilarSongs(
                pb.SimilarSongsRequest(song_id=bundle.song_id(r), mode=mode, k=30, diversity=0.7)).songs]
    assert len(scores) > 10_000 and np.isfinite(scores).all()


def test_recommend_known_user_matches_the_library(server, bundle):
    user = some_user(bundle)
    resp = server.stub.Recommend(pb.RecommendRequest(user_id=user, k=15, acoustic_share=0.4, diversity=0.3))
    assert resp.bundle_version == bundle.version and not resp.folded_in
    row = bundle.user_row(user)
    expected = recommend_for_vector(bundle, bundle.user_vector(row), 15, {"acoustic": 0.4}, 0.3, bundle.played(row))
    assert [s.song_id for s in resp.songs] == [bundle.song_id(it.song_row) for it in expected]
    assert [s.source for s in resp.songs] == [it.sources for it in expected]
    assert np.allclose([s.score for s in resp.songs], [it.score for it in expected], atol=1e-5)
    played = {bundle.song_id(r) for r in bundle.played(row)}
    assert not played & {s.song_id for s in resp.songs}
    meta = bundle.songs([bundle.song_row(resp.songs[0].song_id)])[0]
    first = resp.songs[0]
    assert (first.title, first.artist, first.genre, first.year) == \
        (meta["title"], meta["artist"], meta["genre"], meta["year"])
    assert first.title                                      # the synthetic catalog names every song


def test_recommend_defaults_and_include_played(server, bundle):
    user = some_user(bundle)
    resp = server.stub.Recommend(pb.RecommendRequest(user_id=user))
    assert len(resp.songs) == 10                            # k 0 means 10
    row = bundle.user_row(user)
    expected = recommend_for_vector(bundle, bundle.user_vector(row), 10, {"acoustic": 0.2}, 0.0, bundle.played(row))
    assert [s.song_id for s in resp.songs] == [bundle.song_id(it.song_row) for it in expected]
    resp = server.stub.Recommend(pb.RecommendRequest(user_id=user, k=80, include_played=True,
                                                     acoustic_share=0.0))
    assert {bundle.song_id(r) for r in bundle.played(row)} <= {s.song_id for s in resp.songs}


def test_recommend_filters(server, bundle):
    user = some_user(bundle)
    genre = bundle.songs([0])[0]["genre"]
    resp = server.stub.Recommend(pb.RecommendRequest(
        user_id=user, k=50, filters=pb.Filters(genres=[genre.upper()])))
    assert resp.songs and {s.genre for s in resp.songs} == {genre}
    row = bundle.user_row(user)
    expected = recommend_for_vector(bundle, bundle.user_vector(row), 50, {"acoustic": 0.2}, 0.0, bundle.played(row),
                                    Filters(genres=(genre,)))
    assert [s.song_id for s in resp.songs] == [bundle.song_id(it.song_row) for it in expected]
    artist = resp.songs[0].artist
    resp = server.stub.Recommend(pb.RecommendRequest(
        user_id=user, k=50, filters=pb.Filters(exclude_artists=[artist.lower()], min_year=1900, max_year=3000)))
    assert resp.songs and artist not in {s.artist for s in resp.songs}
    assert all(s.year > 0 for s in resp.songs)


def test_recommend_folds_in_seed_songs(server, bundle):
    seeds = [bundle.song_id(r) for r in bundle.played(bundle.user_row(some_user(bundle)))[:5]]
    for user_id in ("", "a-user-the-model-never-saw"):
        resp = server.stub.Recommend(pb.RecommendRequest(user_id=user_id, seed_song_ids=seeds + ["SONOSUCHSONG"],
                                                         k=10))
        assert resp.folded_in and len(resp.songs) == 10
        assert not set(seeds) & {s.song_id for s in resp.songs}
    rows = bundle.song_rows(seeds)
    expected = recommend_for_vector(bundle, bundle.fold_in(rows), 10, {"acoustic": 0.2}, 0.0, rows)
    assert [s.song_id for s in resp.songs] == [bundle.song_id(it.song_row) for it in expected]
    # a known user ignores the seeds
    resp = server.stub.Recommend(pb.RecommendRequest(user_id=some_user(bundle), seed_song_ids=seeds))
    assert not resp.folded_in


def test_similar_songs(server, bundle):
    warm, cold = rows_by_kind(bundle)
    for mode, name in ((pb.SIMILARITY_MODE_COLLABORATIVE, "collaborative"),
                       (pb.SIMILARITY_MODE_ACOUSTIC, "acoustic"), (pb.SIMILARITY_MODE_MIXED, "mixed"),
                       (pb.SIMILARITY_MODE_UNSPECIFIED, "mixed")):
        resp = server.stub.SimilarSongs(pb.SimilarSongsRequest(song_id=bundle.song_id(warm), k=12, mode=mode))
        expected = similar_songs(bundle, warm, 12, name, {"acoustic": 0.2}, 0.0)
        assert [s.song_id for s in resp.songs] == [bundle.song_id(it.song_row) for it in expected]
        assert len(resp.songs) == 12 and bundle.song_id(warm) not in {s.song_id for s in resp.songs}
        assert resp.bundle_version == bundle.version
    # a song nobody played still has acoustic neighbours (mixed falls back to them)
    for mode in (pb.SIMILARITY_MODE_ACOUSTIC, pb.SIMILARITY_MODE_MIXED):
        resp = server.stub.SimilarSongs(pb.SimilarSongsRequest(song_id=bundle.song_id(cold), k=5, mode=mode))
        assert len(resp.songs) == 5 and all(s.source in (2, 3) for s in resp.songs)
    code, details = code_of(server.stub.SimilarSongs, pb.SimilarSongsRequest(
        song_id=bundle.song_id(cold), mode=pb.SIMILARITY_MODE_COLLABORATIVE))
    assert code == grpc.StatusCode.NOT_FOUND and "no plays" in details


def test_get_song(server, bundle):
    warm, cold = rows_by_kind(bundle)
    song = server.stub.GetSong(pb.GetSongRequest(song_id=bundle.song_id(warm))).song
    meta = bundle.songs([warm])[0]
    assert (song.song_id, song.title, song.artist, song.release, song.year, song.genre) == \
        (bundle.song_id(warm), meta["title"], meta["artist"], meta["release"], meta["year"], meta["genre"])
    assert song.has_plays and song.has_audio
    conf = [g.confidence for g in song.genre_scores]
    assert len(conf) == 4 and conf == sorted(conf, reverse=True) and sum(conf) == pytest.approx(1, abs=1e-3)
    assert {g.genre for g in song.genre_scores} == set(bundle.genres)
    # the tiny world's genre head learned from a dozen songs per genre, and GetSong says so
    assert song.genre_warning == bundle.genre_warning and "fewer than 20 labelled training songs" in song.genre_warning
    # and its factor prediction (2 epochs) did worse on validation than the mean song's factors:
    # every song's acoustic vector, a cold song's above all, comes with the reason
    assert song.acoustic_warning == bundle.acoustic_warning
    assert song.acoustic_warning.startswith("the acoustic model's factor prediction learned from too little: "
                                            "its validation loss")
    song = server.stub.GetSong(pb.GetSongRequest(song_id=bundle.song_id(cold))).song
    assert not song.has_plays and song.has_audio and song.acoustic_warning == bundle.acoustic_warning


def test_ping(server):
    assert server.stub.Ping(pb.PingRequest()) == pb.PingResponse()


@pytest.mark.parametrize("method,request_,code", [
    ("Recommend", pb.RecommendRequest(user_id="nobody"), "NOT_FOUND"),
    ("Recommend", pb.RecommendRequest(seed_song_ids=["SONOSUCHSONG"]), "NOT_FOUND"),
    ("SimilarSongs", pb.SimilarSongsRequest(song_id="SONOSUCHSONG"), "NOT_FOUND"),
    ("GetSong", pb.GetSongRequest(song_id="SONOSUCHSONG"), "NOT_FOUND"),
    ("Recommend", pb.RecommendRequest(), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", k=1001), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", k=-1), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", acoustic_share=1.5), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", acoustic_share=float("nan")), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", diversity=-0.5), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", filters=pb.Filters(min_year=2001, max_year=2000)),
     "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(user_id="U", filters=pb.Filters(min_year=-3)), "INVALID_ARGUMENT"),
    ("Recommend", pb.RecommendRequest(seed_song_ids=["SOX"] * 501), "INVALID_ARGUMENT"),
    ("SimilarSongs", pb.SimilarSongsRequest(song_id="S", k=5000), "INVALID_ARGUMENT"),
    ("SimilarSongs", pb.SimilarSongsRequest(song_id="S", mode=7), "INVALID_ARGUMENT"),
    ("SimilarSongs", pb.SimilarSongsRequest(song_id=""), "INVALID_ARGUMENT"),
    ("GetSong", pb.GetSongRequest(song_id=""), "INVALID_ARGUMENT"),
])
def test_status_codes(server, bundle, method, request_, code):
    if getattr(request_, "user_id", "") == "U":
        request_.user_id = some_user(bundle)
    if getattr(request_, "song_id", "") == "S":
        request_.song_id = bundle.song_id(0)
    got, details = code_of(getattr(server.stub, method), request_)
    assert got == getattr(grpc.StatusCode, code), details
    assert details and "internal" not in details.lower()


def test_health_and_reflection(server):
    for name in ("", SERVICE):
        assert server.health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
            health_pb2.HealthCheckResponse.SERVING
    code, _ = code_of(server.health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert code == grpc.StatusCode.NOT_FOUND
    db = ProtoReflectionDescriptorDatabase(server.channel)
    services = db.get_services()
    assert SERVICE in services and "grpc.health.v1.Health" in services
    desc = db.FindFileContainingSymbol(SERVICE)
    assert "Recommend" in [m.name for m in desc.service[0].method]


def test_tiny_deadline_is_deadline_exceeded_not_a_crash(server, bundle):
    # gRPC checks deadlines on a timer, so a call the server answers within the same tick can
    # still succeed (on this tiny bundle most do once warm): a tiny deadline gives
    # DEADLINE_EXCEEDED or an answer, never another code, and the server lives on. The
    # deterministic case, a deadline passing during a slow search, is
    # test_in_process_drain_and_deadline.
    req = pb.RecommendRequest(user_id=some_user(bundle), k=1000)
    codes = []
    for _ in range(20):
        try:
            server.stub.Recommend(req, timeout=1e-6)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert set(codes) <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK}
    assert len(server.stub.Recommend(pb.RecommendRequest(user_id=some_user(bundle))).songs) == 10


def test_reload_under_traffic(server, work, bundle):
    """A new bundle is built and CURRENT switches while threads call Recommend: no call fails."""
    stop = threading.Event()
    failures: list = []
    versions: list[set] = []
    calls = [0]
    user = some_user(bundle)

    def hammer():
        seen = set()
        versions.append(seen)
        stub = pb_grpc.RecommenderStub(server.channel)
        while not stop.is_set():
            try:
                seen.add(stub.Recommend(pb.RecommendRequest(user_id=user, k=20, diversity=0.2),
                                        timeout=10).bundle_version)
                calls[0] += 1
            except grpc.RpcError as exc:
                failures.append((exc.code(), exc.details()))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        new = build_bundle(work, IndexerConfig(recall_queries=50, seed=1, metadata=False), show_progress=False)
        assert new.name != bundle.version and current_bundle(work) == new
        assert wait_for(lambda: server.stub.GetBundleInfo(pb.GetBundleInfoRequest()).version == new.name)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    seen = set().union(*versions)
    assert {bundle.version, new.name} <= seen and calls[0] > 20
    assert f"serving bundle {new.name} (was {bundle.version})" in server.stderr()


def test_sigterm_drains_and_exits_zero(server):
    """Last test of the module server: calls under way while SIGTERM arrives end cleanly."""
    results: list = []

    def caller():
        stub = pb_grpc.RecommenderStub(server.channel)
        end = time.monotonic() + 20
        while time.monotonic() < end and results.count(grpc.StatusCode.UNAVAILABLE) < 3:
            try:
                stub.Ping(pb.PingRequest(), timeout=5)
                results.append("ok")
            except grpc.RpcError as exc:
                results.append(exc.code())
                details.append(exc.details())

    details: list = []
    t = threading.Thread(target=caller)
    t.start()
    time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    t.join()
    # calls after the stop are refused; one racing the shutdown itself (arrived, never dispatched
    # to a handler) is cancelled by gRPC core; nothing fails any other way
    assert {"ok", grpc.StatusCode.UNAVAILABLE} <= set(results), (set(results), details)
    assert set(results) <= {"ok", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, details
    assert results.count(grpc.StatusCode.CANCELLED) <= 2, details
    err = server.stderr()
    assert "received SIGTERM" in err and "stopped" in err and "Traceback" not in err
    server.channel.close()


# --- no bundle yet, SIGHUP --------------------------------------------------------------------


def test_unavailable_until_a_bundle_appears_then_sighup_loads_it(bundle_dir, tmp_path):
    empty = tmp_path / "empty-work"
    empty.mkdir()
    s = ServerProcess(empty, tmp_path / "server.log", "--poll-seconds", "3600")
    try:
        for call, req in ((s.stub.Recommend, pb.RecommendRequest(user_id="u")),
                          (s.stub.SimilarSongs, pb.SimilarSongsRequest(song_id="s")),
                          (s.stub.GetSong, pb.GetSongRequest(song_id="s")),
                          (s.stub.GetBundleInfo, pb.GetBundleInfoRequest())):
            code, details = code_of(call, req)
            assert code == grpc.StatusCode.UNAVAILABLE and "no bundle" in details
        assert s.stub.Ping(pb.PingRequest()) == pb.PingResponse()
        for name in ("", SERVICE):
            assert s.health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
        # a bundle appears (as `indexer build` would leave it); the hour-long poll never sees it,
        # SIGHUP makes the server look now
        (empty / "bundles").mkdir()
        shutil.copytree(bundle_dir, empty / "bundles" / bundle_dir.name)
        (empty / "bundles" / "CURRENT").write_text(bundle_dir.name + "\n")
        s.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: s.health.Check(health_pb2.HealthCheckRequest(service=SERVICE)).status ==
                        health_pb2.HealthCheckResponse.SERVING, timeout=20), s.stderr()
        assert s.stub.GetBundleInfo(pb.GetBundleInfoRequest()).version == bundle_dir.name
    finally:
        assert s.stop() == 0, s.stderr()


# --- in process: draining and deadlines with a slow bundle ------------------------------------


class _Context:
    """Just enough of grpc.ServicerContext for calling a servicer method directly."""

    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining

    def abort(self, code, details):
        raise grpc.RpcError(code, details)


def _slow(bundle, seconds) -> threading.Event:
    """Make ``bundle.search`` take ``seconds`` longer; the event is set whenever a search starts."""
    search, entered = bundle.search, threading.Event()

    def slow_search(*args, **kwargs):
        entered.set()
        time.sleep(seconds)
        return search(*args, **kwargs)

    bundle.search = slow_search
    return entered


def test_in_process_drain_and_deadline(work, bundle_dir):
    # a bundle of its own: one process can open a bundle's catalog (LMDB) only once at a time
    fresh = build_bundle(work, IndexerConfig(recall_queries=50, seed=2, metadata=False), show_progress=False)
    running = serve(work, bind="127.0.0.1:0", workers=4, poll_seconds=3600)
    try:
        assert running.holder.version == fresh.name
        with running.holder.use() as served:
            entered = _slow(served.bundle, 0.4)
            user = some_user(served.bundle)
        channel = grpc.insecure_channel(running.address)
        stub = pb_grpc.RecommenderStub(channel)
        req = pb.RecommendRequest(user_id=user, k=5)
        # the deadline passes during the (slow) search: DEADLINE_EXCEEDED, and the server lives on
        code, _ = code_of(stub.Recommend, req, timeout=0.3)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(stub.Recommend(req, timeout=10).songs) == 5
        # a call in flight when the server stops finishes; a call after that is refused
        result: list = []
        t = threading.Thread(target=lambda: result.append(stub.Recommend(req, timeout=10)))
        entered.clear()
        t.start()
        assert entered.wait(10)                            # the call is inside its first search
        running.stop(grace=10)
        t.join()
        assert len(result) == 1 and len(result[0].songs) == 5
        code, _ = code_of(stub.Ping, pb.PingRequest(), timeout=2)
        assert code == grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        running.stop(grace=0)


def test_servicer_checks_the_deadline_and_maps_errors(bundle):
    from pmrs_server.servicer import BundleHolder, RecommenderServicer

    servicer = RecommenderServicer(BundleHolder(Recommender(bundle)))   # (not closed: the fixture owns it)
    req = pb.RecommendRequest(user_id=some_user(bundle))
    with pytest.raises(grpc.RpcError) as err:
        servicer.Recommend(req, _Context(0.0))
    assert err.value.args[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(servicer.Recommend(req, _Context(None)).songs) == 10
    assert len(servicer.Recommend(req, _Context(5.0)).songs) == 10
    with pytest.raises(grpc.RpcError) as err:
        servicer.Recommend(pb.RecommendRequest(user_id="nobody"), _Context(None))
    assert err.value.args[0] == grpc.StatusCode.NOT_FOUND


def test_compute_slots_serialise_calls_and_honour_deadlines(bundle):
    from concurrent.futures import ThreadPoolExecutor

    from pmrs_server.servicer import BundleHolder, RecommenderServicer

    servicer = RecommenderServicer(BundleHolder(Recommender(bundle)), compute_slots=1)
    users = [bundle.user_ids[i].decode() for i in range(0, bundle.n_users, max(1, bundle.n_users // 24))]
    reqs = [pb.RecommendRequest(user_id=u, k=7) for u in users]
    serial = [[s.song_id for s in servicer.Recommend(r, _Context(None)).songs] for r in reqs]
    with ThreadPoolExecutor(8) as pool:   # one slot, eight callers: same answers, none lost
        parallel = list(pool.map(lambda r: [s.song_id for s in servicer.Recommend(r, _Context(10.0)).songs],
                                 reqs))
    assert parallel == serial and all(len(x) == 7 for x in serial)
    # while the only slot is busy, a call waits no longer than its deadline
    servicer._gate.acquire()
    try:
        t0 = time.perf_counter()
        with pytest.raises(grpc.RpcError) as err:
            servicer.Recommend(reqs[0], _Context(0.2))
        assert 0.15 <= time.perf_counter() - t0 < 2.0
        assert err.value.args[0] == grpc.StatusCode.DEADLINE_EXCEEDED and "compute slot" in err.value.args[1]
        # calls that need no computing slot are not held up
        assert servicer.GetSong(pb.GetSongRequest(song_id=serial[0][0]), _Context(0.2)).song.song_id
    finally:
        servicer._gate.release()
    assert [s.song_id for s in servicer.Recommend(reqs[0], _Context(0.2)).songs] == serial[0]
    with pytest.raises(ValueError):
        RecommenderServicer(BundleHolder(Recommender(bundle)), compute_slots=-1)
    unlimited = RecommenderServicer(BundleHolder(Recommender(bundle)), compute_slots=0)
    assert [s.song_id for s in unlimited.Recommend(reqs[0], _Context(None)).songs] == serial[0]


def test_holder_closes_a_replaced_bundle_only_when_its_last_call_ends():
    from pmrs_server.servicer import BundleHolder

    class B:
        def __init__(self, version):
            self.version, self.closed = version, False

        def close(self):
            self.closed = True

    a, b = B("a"), B("b")
    holder = BundleHolder(a)
    with holder.use() as got:
        assert got is a
        holder.swap(b)
        assert holder.version == "b" and not a.closed     # still in use by this call
        with holder.use() as got2:
            assert got2 is b
    assert a.closed and not b.closed
    holder.close()
    assert b.closed and holder.bundle is None
    with holder.use() as got:
        assert got is None


def test_command_line_refuses_bad_settings(work, tmp_path, capsys):
    import socket

    from pmrs_server.main import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nbindd = \"127.0.0.1:0\"\n")
    assert main(["--workdir", str(work), "--config", str(bad), "-q"]) == 2
    assert "unknown setting(s) in [server]: bindd" in capsys.readouterr().err
    assert main(["--workdir", str(work), "--bind", "localhost", "-q"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["--workdir", str(work), "--bind", "127.0.0.1:0", "--default-diversity", "2", "-q"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    with socket.socket() as busy:                         # a port someone else holds
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--workdir", str(work), "--bind", f"127.0.0.1:{port}", "-q"]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
