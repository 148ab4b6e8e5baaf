"""Writes that once broke a later rebuild or were counted wrong (issue 22): each is refused with
InvalidArgument or taken in without harm."""

import shutil

import numpy as np
import pytest

import pmrs
from pmrs.interactions import INTERACTIONS_DIR, MAX_COUNT, Interactions
from pmrs.live.log import WriteLog
from servers import work_with_bundle


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "hardening")


@pytest.fixture()
def fresh(work, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(work, w)
    return w


def test_play_counts_on_one_pair_never_wrap_and_the_rebuild_trains(serving_workdir, fresh):
    # three valid calls of 10,000 x 100,000 plays of one pair: 3e9 plays, past int32
    from pmrs.cli import main
    from pmrs.collaborative.wmf import load_run

    with pmrs.Recommender.open(fresh, live=True) as rec:
        b = rec.bundle
        user, song = "heavy-listener", b.song_id(0)
        for _ in range(3):
            rec.record_plays(user, [(song, 100_000)] * 10_000)
        assert rec.live.users[user].counts.sum() == 3e9
        assert rec.recommend(user, k=5).songs    # the live vector is finite
    data, cfg = serving_workdir.parent / "data", serving_workdir.parent / "c.toml"
    common = ["--workdir", str(fresh), "--config", str(cfg), "-q"]
    assert main(["ingest", str(data)] + common) == 0
    inter = Interactions.load(fresh / INTERACTIONS_DIR)
    assert inter.matrix[inter.user_index(user), inter.song_index(song)] == MAX_COUNT   # capped, not wrapped
    assert (inter.matrix.data > 0).all()
    assert main(["train-wmf", "--run", "after-heavy", "--no-select"] + common) == 0
    model, _, _ = load_run(fresh / "models" / "wmf" / "after-heavy")
    assert np.isfinite(model.user_factors).all() and np.isfinite(model.song_factors).all()


BAD_IDS = ["", "  ", "x\x00", "\x00", " lead", "trail ", "a" * 257, "\udc80", "é" * 129]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_an_id_that_cannot_round_trip_is_refused_and_nothing_is_written(fresh, bad):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        song = rec.bundle.song_id(0)
        before = rec.live.log.last_seq()
        with pytest.raises(pmrs.InvalidArgument):
            rec.record_plays(bad, {song: 1})
        with pytest.raises(pmrs.InvalidArgument):
            rec.record_plays("someone", {bad: 1})
        with pytest.raises(pmrs.InvalidArgument):
            rec.add_song(bad, title="t")
        with pytest.raises(pmrs.InvalidArgument):
            rec.record_plays("someone", {song: 1}, request_id=bad or "\x00")
        assert rec.live.log.last_seq() == before


def test_an_existing_id_with_a_nul_appended_no_longer_breaks_the_rebuild(serving_workdir, fresh):
    # the case that once made `indexer build` fail with "duplicate ids" until the log was edited
    from pmrs.cli import main
    from pmrs.indexing import IndexerConfig, build_bundle

    with pmrs.Recommender.open(fresh, live=True) as rec:
        user, song = rec.bundle.user_ids[0].decode(), rec.bundle.song_id(0)
        with pytest.raises(pmrs.InvalidArgument, match="NUL"):
            rec.record_plays(user + "\x00", {song: 1})
        with pytest.raises(pmrs.InvalidArgument, match="NUL"):
            rec.add_song(song + "\x00", title="again")
        rec.record_plays(user, {song: 1})
    data, cfg = serving_workdir.parent / "data", serving_workdir.parent / "c.toml"
    common = ["--workdir", str(fresh), "--config", str(cfg), "-q"]
    assert main(["ingest", str(data)] + common) == 0
    assert main(["train-wmf", "--run", "w-nul", "--no-select"] + common) == 0
    shutil.rmtree(fresh / "models" / "cnn")   # (its CNN predicts another WMF run's space)
    out = build_bundle(fresh, IndexerConfig(recall_queries=20, metadata=False, neighbours=False,
                                            default_lists=False), wmf_run="w-nul", show_progress=False)
    with pmrs.Recommender.open(out) as rec:
        assert rec.recommend(user, k=3).songs and rec.bundle.n_users == len(set(rec.bundle.user_ids.tolist()))


@pytest.mark.parametrize("count", [None, 10**400, "1e5", "3", 1.5, 0, -1, 100_001, float("nan"), float("inf"),
                                   True, [1]], ids=repr)
def test_a_bad_count_is_invalid_argument(fresh, count):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        before = rec.live.log.last_seq()
        with pytest.raises(pmrs.InvalidArgument, match="play counts"):
            rec.record_plays("someone", {rec.bundle.song_id(0): count})
        assert rec.live.log.last_seq() == before


@pytest.mark.parametrize("plays", [None, 5, [("a",)], [("a", 1, 2)], ["ab"]], ids=repr)
def test_malformed_plays_are_invalid_argument(fresh, plays):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        with pytest.raises(pmrs.InvalidArgument):
            rec.record_plays("someone", plays)


@pytest.mark.parametrize("fields", [{"year": "nineteen"}, {"year": 10**400}, {"title": 5}, {"title": "\udc80"},
                                    {"tags": "rock"}, {"tags": [1]}], ids=repr)
def test_bad_song_fields_are_invalid_argument(fresh, fields):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        before = rec.live.log.last_seq()
        with pytest.raises(pmrs.InvalidArgument):
            rec.add_song("SONEWSONG0000000001", **fields)
        assert rec.live.log.last_seq() == before


def test_the_log_append_is_the_check_for_a_new_song_id(fresh):
    from pmrs.live.log import SONG, WriteLog

    with WriteLog.of(fresh) as wlog:
        first = wlog.append(SONG, {"song_id": "SORACE0000000000001", "title": "one"})
        with pytest.raises(pmrs.AlreadyExists):
            wlog.append(SONG, {"song_id": "SORACE0000000000001", "title": "two"})
        assert wlog.last_seq() == first.seq


def test_one_new_song_id_sent_to_two_recommenders_at_once_is_added_once(fresh):
    # two recommenders over one work directory (as two servers over one log), adding the same
    # new ids at once: each id is logged once; every other call answers AlreadyExists
    import threading
    from collections import Counter

    from pmrs.live.log import SONG

    ids = [f"SORACE{i:013d}" for i in range(30)]
    outcomes: list[str] = []
    lock = threading.Lock()
    recs = [pmrs.Recommender.open(fresh, live=True) for _ in range(2)]
    try:
        barrier = threading.Barrier(4)

        def adder(rec):
            barrier.wait()
            for sid in ids:
                try:
                    rec.add_song(sid, title="raced")
                    got = "added"
                except pmrs.AlreadyExists:
                    got = "exists"
                except Exception as exc:   # anything else is the bug this test is about
                    got = f"{type(exc).__name__}: {exc}"
                with lock:
                    outcomes.append(got)

        threads = [threading.Thread(target=adder, args=(r,)) for r in recs for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        logged = Counter(w.body["song_id"] for w in recs[0].live.log.since(0, kinds=(SONG,)))
    finally:
        for r in recs:
            r.close()
    assert set(outcomes) <= {"added", "exists"}, Counter(outcomes)
    assert Counter(outcomes)["added"] == len(ids)
    assert all(logged[sid] == 1 for sid in ids), logged


# -- the same rules over gRPC -----------------------------------------------------------------

TOKEN = "hardening-write-token-0123456789ab"


@pytest.fixture()
def served(fresh):
    from pmrs_server.auth import Auth
    from pmrs_server.main import serve

    running = serve(fresh, bind="127.0.0.1:0", auth=Auth(write=TOKEN), metrics_bind="")
    yield running
    running.stop(grace=1.0)


def test_grpc_refuses_what_the_api_refuses_with_invalid_argument(served, fresh):
    import grpc

    from pmrs.v1 import recommender_pb2 as pb
    from pmrs.v1 import recommender_pb2_grpc as pb_grpc

    stub = pb_grpc.RecommenderStub(grpc.insecure_channel(served.address))
    md = (("authorization", f"Bearer {TOKEN}"),)
    song = served.holder.bundle.bundle.song_id(0)
    before = _last_seq(fresh)
    for req in (pb.RecordPlaysRequest(user_id="x\x00", plays=[pb.Play(song_id=song, count=1)]),
                pb.RecordPlaysRequest(user_id=" x", plays=[pb.Play(song_id=song, count=1)]),
                pb.AddSongRequest(song_id=song + "\x00", title="t"),
                pb.AddSongRequest(song_id="SOEMPTYCLIP00000001", title="t", audio=b"")):   # an empty clip
        with pytest.raises(grpc.RpcError) as err:
            (stub.AddSong if isinstance(req, pb.AddSongRequest) else stub.RecordPlays)(req, metadata=md)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
    assert _last_seq(fresh) == before
    # no clip at all is a song added by its metadata alone
    r = stub.AddSong(pb.AddSongRequest(song_id="SONOCLIP0000000001", title="no clip"), metadata=md)
    assert r.song.title == "no clip" and not r.song.has_audio


def test_an_empty_clip_is_refused_by_the_client_command_too(served, tmp_path, capsys, monkeypatch):
    from pmrs_clients.cli import main as client

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    monkeypatch.setenv("PMRS_TOKEN", TOKEN)
    code = client(["--target", served.address, "add-song", "SOEMPTYCLI00000001", "--title", "t",
                   "--audio", str(empty)])
    assert code != 0 and "empty" in capsys.readouterr().err


def test_a_write_retried_after_a_timeout_answers_like_the_first(fresh, monkeypatch):
    # the server takes longer than the client waits (a slow clip): the client sends the call again
    # with its request id and gets the song, not ALREADY_EXISTS; the log holds it once
    import time

    from pmrs.live import songs
    from pmrs.live.log import SONG
    from pmrs_server.auth import Auth
    from pmrs_server.main import serve

    real = songs.bundle_encoder

    def slow_encoder(bundle, **kwargs):
        encode = real(bundle, **kwargs)

        def slow(body, clip):
            time.sleep(1.5)
            return encode(body, clip)
        return slow

    monkeypatch.setattr(songs, "bundle_encoder", slow_encoder)
    running = serve(fresh, bind="127.0.0.1:0", auth=Auth(write=TOKEN), metrics_bind="")
    try:
        with pmrs.connect(running.address, token=TOKEN, timeout=1.0) as remote:
            added = remote.add_song("SOSLOWSONG00000001", title="Slow", artist="Taker")
        assert added.song.title == "Slow" and added.duplicate
        with WriteLog.of(fresh) as wlog:
            assert [w.body["song_id"] for w in wlog.since(0, kinds=(SONG,))].count("SOSLOWSONG00000001") == 1
    finally:
        running.stop(grace=3.0)


def _last_seq(work) -> int:
    with WriteLog.of(work) as wlog:
        return wlog.last_seq()
