"""Feedback beyond plays (pmrs.live.feedback): likes, skips, dislikes and hidden artists, through
the durable write log, at once and after the next bundle."""

import shutil

import numpy as np
import pytest
from servers import work_with_bundle

import pmrs
from pmrs.errors import InvalidArgument, NotFound
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.live.feedback import LIKE_PLAYS


@pytest.fixture(scope="module")
def base(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "feedback")


@pytest.fixture()
def work(base, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base, w)
    return w


def _user(rec, i=5):
    return rec.bundle.user_ids[i].decode()


def test_a_dislike_leaves_the_list_at_once_and_after_a_new_bundle(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        user = _user(rec)
        before = rec.recommend(user, k=10).song_ids
        wider = rec.recommend(user, k=30).song_ids
        first = before[0]
        ack = rec.record_feedback(user, first, "dislike")
        assert ack.seq > 0 and not ack.duplicate
        after = rec.recommend(user, k=10).song_ids
        assert first not in after and len(after) == 10
        assert set(after) <= set(wider) and len(set(after) & set(before)) >= 8   # the others stay
        assert first not in rec.recommend(user, k=10, shares={"collaborative": 1.0}).song_ids
        assert first not in rec.recommend(user, k=50, include_played=True).song_ids
    build_bundle(work, IndexerConfig(recall_queries=20, metadata=False), show_progress=False)
    with pmrs.Recommender.open(work, live=True) as rec:    # a new bundle, the same log
        assert first not in rec.recommend(user, k=10).song_ids
        assert rec.live.feedback_of(user).disliked


def test_hiding_an_artist_removes_every_song_of_theirs(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        user = _user(rec, 7)
        songs = rec.recommend(user, k=30).songs
        artist = songs[0].artist
        assert artist
        rec.record_feedback(user, songs[0].song_id, "hide_artist")
        after = rec.recommend(user, k=30).songs
        assert after and all(s.artist.casefold() != artist.casefold() for s in after)
        assert any(s.artist == artist for s in rec.recommend(_user(rec, 8), k=200).songs)   # only for that user


def test_a_like_counts_as_plays_and_a_skip_sinks_the_song(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        b = rec.bundle
        user = _user(rec, 9)
        row = b.user_row(user)
        new = rec.recommend(user, k=10).songs[3].song_id
        rec.record_feedback(user, new, "like")
        mine = rec.live.users[user]
        rows = np.concatenate([b.played(row), [b.song_row(new)]])
        counts = np.concatenate([b.play_counts(row), [LIKE_PLAYS]])
        np.testing.assert_allclose(mine.vector, b.fold_in(rows, counts), rtol=1e-4, atol=1e-6)
        assert new not in rec.recommend(user, k=10).song_ids    # liked: in the history now
        listed = rec.recommend(user, k=10).song_ids
        rec.record_feedback(user, listed[0], "skip")
        assert rec.recommend(user, k=10).song_ids == listed[1:] + listed[:1]   # last now
        rec.record_feedback(user, listed[1], "skip")
        rec.record_feedback(user, listed[1], "skip")
        assert rec.recommend(user, k=10).song_ids == listed[2:] + [listed[0], listed[1]]   # more skips, lower


def test_feedback_is_checked_logged_once_and_replayed(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        user = _user(rec, 11)
        song = rec.recommend(user, k=1).song_ids[0]
        for bad in ("love", "", None):
            with pytest.raises(InvalidArgument):
                rec.record_feedback(user, song, bad)
        with pytest.raises(NotFound):
            rec.record_feedback(user, "no-such-song", "dislike")
        seq = rec.live.seq
        assert rec.live.seq == seq   # nothing written by the refused calls
        a = rec.record_feedback(user, song, "dislike", request_id="fb-1")
        b = rec.record_feedback(user, song, "dislike", request_id="fb-1")
        assert b.duplicate and b.seq == a.seq
    with pmrs.Recommender.open(work, live=True) as other:   # another process: replayed from the log
        assert song not in other.recommend(user, k=10).song_ids
        assert other.live.feedback_of(user).disliked == {other.bundle.song_row(song)}


def test_a_recommender_without_writes_refuses_feedback(work):
    from pmrs.errors import ReadOnly

    with pmrs.Recommender.open(work) as rec, pytest.raises(ReadOnly):
        rec.record_feedback(_user(rec), rec.bundle.song_ids[0].decode(), "like")


def test_the_rebuild_trains_on_likes_once_and_keeps_dislikes(work, serving_workdir):
    from pmrs.cli import main
    from pmrs.interactions import Interactions

    with pmrs.Recommender.open(work, live=True) as rec:
        user = _user(rec, 13)
        liked, disliked = rec.recommend(user, k=2).song_ids
        rec.record_feedback(user, liked, "like")
        rec.record_feedback(user, disliked, "dislike")
    data = serving_workdir.parent / "data"
    for step in (["ingest", str(data)], ["train-wmf", "--no-select"]):
        assert main([*step, "--workdir", str(work), "-q"]) == 0
    inter = Interactions.load(work / "interactions")
    u = int(np.flatnonzero(inter.user_ids == user.encode())[0])
    s = int(np.flatnonzero(inter.song_ids == liked.encode())[0])
    assert inter.matrix[u, s] == LIKE_PLAYS        # the like, as plays, once
    build_bundle(work, IndexerConfig(recall_queries=20, metadata=False), show_progress=False)
    with pmrs.Recommender.open(work, live=True) as rec:
        assert user not in rec.live.users          # nothing left to replay: the like is in the bundle
        assert liked in {rec.bundle.song_id(r) for r in rec.bundle.played(rec.bundle.user_row(user)).tolist()}
        assert disliked not in rec.recommend(user, k=20).song_ids


def test_feedback_over_grpc_needs_the_write_token_and_a_known_action(work, tmp_path):
    import grpc
    from servers import ServerProcess

    from pmrs.errors import PermissionDenied, Unauthenticated
    from pmrs.v1 import recommender_pb2 as pb
    from pmrs.v1 import recommender_pb2_grpc as pb_grpc

    token = "feedback-token-0123456789"
    with pmrs.Recommender.open(work) as rec:
        user = _user(rec, 15)
    server = ServerProcess(work, tmp_path / "server.log", env={"PMRS_WRITE_TOKEN": token})
    try:
        with pmrs.connect(server.address, token=token) as remote, pmrs.connect(server.address) as anonymous:
            first = remote.recommend(user, k=10).song_ids[0]
            with pytest.raises((PermissionDenied, Unauthenticated)):
                anonymous.record_feedback(user, first, "dislike")
            with pytest.raises(InvalidArgument):
                remote.record_feedback(user, first, "love")
            assert not remote.record_feedback(user, first, "dislike", request_id="g-1").duplicate
            assert remote.record_feedback(user, first, "dislike", request_id="g-1").duplicate
            assert first not in remote.recommend(user, k=10).song_ids
            second = remote.recommend(user, k=10).song_ids[0]
        # pmrs-client feedback: the same write from the command line
        from pmrs_clients import cli

        (tmp_path / "token").write_text(token)
        assert cli.main(["--target", server.address, "--json", "feedback", user, second, "dislike",
                         "--token-file", str(tmp_path / "token")]) == 0
        with pmrs.connect(server.address) as reader:
            assert second not in reader.recommend(user, k=10).song_ids
        assert cli.main(["--target", server.address, "feedback", user, second, "love"]) != 0
        with grpc.insecure_channel(server.address) as channel:   # a generic client leaving the action unset
            stub = pb_grpc.RecommenderStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.RecordFeedback(pb.RecordFeedbackRequest(user_id=user, song_id=first),
                                    metadata=(("authorization", f"Bearer {token}"),))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "FEEDBACK_ACTION_LIKE" in err.value.details()
    finally:
        server.kill()


def test_undo_takes_a_dislike_a_hidden_artist_and_skips_back_and_stays_undone(work):
    with pmrs.Recommender.open(work, live=True) as rec:
        user = _user(rec, 17)
        listed = rec.recommend(user, k=10).song_ids
        top = rec.recommend(user, k=10).songs[0]
        rec.record_feedback(user, listed[0], "dislike")
        rec.record_feedback(user, listed[1], "skip")
        rec.record_feedback(user, listed[2], "hide_artist")
        assert listed[0] not in rec.recommend(user, k=10).song_ids
        for action, song in (("undo_dislike", listed[0]), ("undo_skip", listed[1]), ("undo_hide_artist", listed[2])):
            rec.record_feedback(user, song, action)
        assert rec.recommend(user, k=10).song_ids == listed and top.song_id == listed[0]
        assert not rec.live.feedback_of(user).narrows
    with pmrs.Recommender.open(work, live=True) as again:     # replayed from the log: still undone
        assert again.recommend(user, k=10).song_ids == listed


def test_history_is_the_users_plays_and_feedback_in_process_and_over_grpc(work, tmp_path):
    from servers import ServerProcess

    from pmrs_clients import cli

    with pmrs.Recommender.open(work, live=True) as rec:
        b = rec.bundle
        user = _user(rec, 19)
        row = b.user_row(user)
        listed = rec.recommend(user, k=4).songs
        rec.record_feedback(user, listed[0].song_id, "like")
        rec.record_feedback(user, listed[1].song_id, "dislike")
        rec.record_feedback(user, listed[2].song_id, "skip")
        rec.record_feedback(user, listed[3].song_id, "hide_artist")
        h = rec.history(user, limit=1000)
        counts = dict(zip((b.song_id(r) for r in b.played(row).tolist()), b.play_counts(row).tolist()))
        counts[listed[0].song_id] = LIKE_PLAYS
        assert h.played_songs == len(counts) and {s.song_id: s.plays for s in h.songs} == counts
        assert [s.plays for s in h.songs] == sorted(counts.values(), reverse=True)
        assert [s.song_id for s in h.liked] == [listed[0].song_id]
        assert [s.song_id for s in h.disliked] == [listed[1].song_id]
        assert [(s.song_id, s.skips) for s in h.skipped] == [(listed[2].song_id, 1)]
        assert h.hidden_artists == (listed[3].artist.casefold(),)
        artists: dict = {}
        for s in h.songs:
            artists[s.artist] = artists.get(s.artist, 0) + s.plays
        assert h.top_artists[0].plays == max(artists.values())
        assert len(rec.history(user, limit=3).songs) == 3
        with pytest.raises(NotFound):
            rec.history("nobody-at-all")
        with pytest.raises(InvalidArgument):
            rec.history(user, limit=0)
    server = ServerProcess(work, tmp_path / "server.log")
    try:
        with pmrs.connect(server.address) as remote:
            assert remote.history(user, limit=1000) == h
            with pytest.raises(NotFound):
                remote.history("nobody-at-all")
        assert cli.main(["--target", server.address, "history", user, "--limit", "3"]) == 0
    finally:
        server.kill()


def test_undoing_a_like_takes_its_plays_back_at_once_and_in_the_rebuild(work, serving_workdir):
    from pmrs.cli import main
    from pmrs.interactions import Interactions

    with pmrs.Recommender.open(work, live=True) as rec:
        b = rec.bundle
        user, other = _user(rec, 19), _user(rec, 21)
        row = b.user_row(user)
        before = rec.recommend(user, k=10).song_ids
        kept, undone = rec.recommend(other, k=2).song_ids
        for song in (before[0], before[0]):          # liked twice: both likes are undone together
            rec.record_feedback(user, song, "like")
        rec.record_feedback(other, kept, "like")
        rec.record_feedback(other, undone, "like")
        assert [s.song_id for s in rec.history(user).liked] == [before[0]]
        rec.record_feedback(user, before[0], "undo_like")
        rec.record_feedback(other, undone, "undo_like")
        rec.record_feedback(other, kept, "undo_dislike")          # an undo of nothing changes nothing
        np.testing.assert_allclose(rec.live.users[user].vector, b.fold_in(b.played(row), b.play_counts(row)),
                                   rtol=1e-4, atol=1e-6)        # back to the bundle's own plays
        np.testing.assert_array_equal(rec.live.users[user].played, b.played(row))   # not played now
        assert [s.song_id for s in rec.history(user).liked] == []
        assert [s.song_id for s in rec.history(other).liked] == [kept]
    data = serving_workdir.parent / "data"
    for step in (["ingest", str(data)], ["train-wmf", "--no-select"]):
        assert main([*step, "--workdir", str(work), "-q"]) == 0
    inter = Interactions.load(work / "interactions")

    def count(u, s):
        r = int(np.flatnonzero(inter.user_ids == u.encode())[0])
        c = np.flatnonzero(inter.song_ids == s.encode())
        return inter.matrix[r, int(c[0])] if c.size else 0

    assert count(user, before[0]) == 0 and count(other, undone) == 0 and count(other, kept) == LIKE_PLAYS
