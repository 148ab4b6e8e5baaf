"""Live writes through the Python API: plays and new songs take effect at once, are durable in
the write log, replay on reopening, are shared by every process over one work directory, and
bad writes change nothing."""

import shutil

import numpy as np
import pytest
import scipy.sparse as sp

import pmrs
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.interactions import INTERACTIONS_DIR, Interactions
from pmrs.live.log import LogUnavailable, WriteLog
from pmrs.live.state import EncodedSong
from pmrs.serving import contract as C
from pmrs.collaborative.wmf import WMFConfig, fold_in
from servers import work_with_bundle


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    return work_with_bundle(serving_workdir, tmp_path_factory, "live")


@pytest.fixture()
def fresh(work, tmp_path):
    """A copy of the work directory with an empty write log."""
    w = tmp_path / "w"
    shutil.copytree(work, w)
    return w


def _exact_vector(rec, user_id, extra_counts):
    """implicit's recalculate_user on the user's whole history: the bundle's counts + extra."""
    b = rec.bundle
    inter = Interactions.load(b.path.parents[1] / INTERACTIONS_DIR)
    row = np.zeros(b.n_songs)
    u = b.user_row(user_id)
    if u is not None:
        row[np.asarray(b.played(u))] = b.play_counts(u)
    for sid, c in extra_counts.items():
        row[b.song_row(sid)] += c
    factors = np.zeros((b.n_songs, b.factors), np.float32)   # songs without plays: zero factors
    ix_rows, vecs = b.song_vectors(C.COLLABORATIVE, np.arange(b.n_songs))
    factors[ix_rows] = vecs
    cfg = WMFConfig(**{k: v for k, v in b.manifest["wmf_config"].items() if k in WMFConfig.__dataclass_fields__})
    assert inter.n_users == b.n_users
    return fold_in(sp.csr_matrix(row[None, :]), factors, cfg)[0]


def _unplayed_songs(rec, user_id, n):
    b = rec.bundle
    played = set(np.asarray(b.played(b.user_row(user_id))).tolist())
    rows = np.asarray(rec.bundle.song_vectors(C.COLLABORATIVE, np.arange(b.n_songs))[0]).nonzero()[0]
    return [b.song_id(r) for r in rows if r not in played][:n]


def test_plays_change_the_next_recommendations_exactly(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        user = rec.bundle.song_id(0) and rec.bundle.user_ids[3].decode()
        before = rec.recommend(user, k=10)
        assert before.precomputed
        new = before.song_ids[:3]
        done = rec.record_plays(user, {s: 5 for s in new})
        assert done.seq == 1 and not done.duplicate
        after = rec.recommend(user, k=10)
        assert not after.precomputed
        assert not set(new) & set(after.song_ids), "songs just played must be excluded"
        assert after.song_ids != before.song_ids
        live_user = rec.live.users[user]
        np.testing.assert_allclose(live_user.vector, _exact_vector(rec, user, {s: 5 for s in new}),
                                   rtol=1e-4, atol=1e-5)
        # counts add up over calls, and the included-played view shows the played songs
        rec.record_plays(user, [(new[0], 2)])
        assert rec.live.users[user].counts[np.searchsorted(rec.live.users[user].played,
                                                          rec.bundle.song_row(new[0]))] == 7


def test_a_new_user_is_created_by_first_plays(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        with pytest.raises(pmrs.NotFound):
            rec.recommend("brand-new-listener")
        songs = _unplayed_songs(rec, rec.bundle.user_ids[0].decode(), 4)
        rec.record_plays("brand-new-listener", {s: 1 for s in songs})
        got = rec.recommend("brand-new-listener", k=5)
        assert len(got.songs) == 5 and not set(songs) & set(got.song_ids)
        np.testing.assert_allclose(rec.live.users["brand-new-listener"].vector,
                                   _exact_vector(rec, "brand-new-listener", {s: 1 for s in songs}),
                                   rtol=1e-4, atol=1e-5)
        by_genre = rec.recommend_by_genre("brand-new-listener", k=2)
        assert by_genre.genres


def test_bad_plays_change_nothing(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        user = rec.bundle.user_ids[1].decode()
        good = rec.bundle.song_id(1)
        with pytest.raises(pmrs.NotFound, match="NOSUCHSONG"):
            rec.record_plays(user, [(good, 1), ("NOSUCHSONG", 1)])
        for bad in ([(good, 0)], [(good, -3)], [(good, 1.5)], [(good, 10**9)], []):
            with pytest.raises(pmrs.InvalidArgument):
                rec.record_plays(user, bad)
        with pytest.raises(pmrs.InvalidArgument):
            rec.record_plays("", [(good, 1)])
        assert rec.live.log.last_seq() == 0 and not rec.live.changed
        assert rec.recommend(user).precomputed


def test_a_retried_request_is_applied_once(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        user = rec.bundle.user_ids[2].decode()
        s = rec.bundle.song_id(5)
        first = rec.record_plays(user, {s: 3}, request_id="req-1")
        again = rec.record_plays(user, {s: 3}, request_id="req-1")
        assert again.duplicate and again.seq == first.seq
        u = rec.live.users[user]
        base = 0.0
        brow = rec.bundle.user_row(user)
        played = np.asarray(rec.bundle.played(brow))
        if rec.bundle.song_row(s) in played:
            base = float(rec.bundle.play_counts(brow)[np.searchsorted(played, rec.bundle.song_row(s))])
        assert u.counts[np.searchsorted(u.played, rec.bundle.song_row(s))] == base + 3


def test_writes_replay_on_reopening_and_reach_other_processes(fresh):
    user = "replayed-user"
    from pmrs.live.state import LiveState
    with pmrs.Recommender.open(fresh, live=True) as a:
        # a second reader over its own connection to the log (one LMDB catalog per process: the
        # server tests run two processes)
        b = pmrs.Recommender(a.bundle, live=LiveState(a.bundle, WriteLog.of(fresh)))
        songs = [a.bundle.song_id(r) for r in range(3)]
        a.record_plays(user, {s: 2 for s in songs})
        with pytest.raises(pmrs.NotFound):
            b.recommend(user)
        assert b.refresh() == 1
        assert b.recommend(user, k=5).song_ids == a.recommend(user, k=5).song_ids
        expected = a.recommend(user, k=8).song_ids
    with pmrs.Recommender.open(fresh, live=True) as c:
        assert c.live_seq == 1
        assert c.recommend(user, k=8).song_ids == expected
    with pmrs.Recommender.open(fresh) as plain:   # a read-only recommender knows nothing of it
        with pytest.raises(pmrs.NotFound):
            plain.recommend(user)
        with pytest.raises(pmrs.ReadOnly):
            plain.record_plays(user, {songs[0]: 1})


def test_a_bundle_replays_only_writes_after_its_live_seq(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        rec.record_plays("u-early", {rec.bundle.song_id(0): 1})
        rec.record_plays("u-late", {rec.bundle.song_id(1): 1})
        rec.bundle.manifest["live_seq"] = 1     # as a bundle that took the first write in
    from pmrs.live.state import LiveState
    with pmrs.Recommender.open(fresh) as plain:
        plain.bundle.manifest["live_seq"] = 1
        state = LiveState(plain.bundle, WriteLog.of(fresh))
        state.catch_up()
        assert set(state.users) == {"u-late"} and state.seq == 2


def _encoder(vectors_by_id):
    def encode(fields, clip):
        v = vectors_by_id.get(fields["song_id"])
        return EncodedSong({C.ACOUSTIC: v} if v is not None else {})
    return encode


def test_an_added_song_is_found_has_neighbours_and_can_be_recommended(fresh):
    with pmrs.Recommender.open(fresh) as plain:
        b = plain.bundle
        have, vecs = b.song_vectors(C.ACOUSTIC, np.arange(b.n_songs))
        twin_row = int(np.flatnonzero(have)[0])
        twin = b.song_id(twin_row)
        twin_vec = vecs[0] * 1.001
        twin_neighbours = plain.similar_songs(twin, k=5, mode=C.ACOUSTIC).song_ids
    enc = _encoder({"NEWSONG-1": twin_vec, "LOUD": twin_vec * 50})
    with pmrs.Recommender.open(fresh, live=True, encoder=enc) as rec:
        song = rec.add_song("NEWSONG-1", title="Fresh <Track> & \"quotes\"", artist="Nobody", year=2026,
                            genre="rock", tags=["new", "demo"]).song
        assert song.sources == (C.ACOUSTIC,) and song.title == "Fresh <Track> & \"quotes\""
        near = rec.similar_songs("NEWSONG-1", k=5, mode=C.ACOUSTIC).song_ids
        # (inner product: the twin's own query ranks the same songs, the twin among them)
        assert len(near) == 5 and set(near) <= set(twin_neighbours) | {twin}
        rec.add_song("LOUD", title="a long vector along the twin's")   # the top inner product
        assert rec.similar_songs(twin, k=3, mode=C.ACOUSTIC).song_ids[0] == "LOUD"
        with pytest.raises(pmrs.AlreadyExists):
            rec.add_song("NEWSONG-1", title="again")
        with pytest.raises(pmrs.AlreadyExists):
            rec.add_song(twin)
        # plays of the new song fold in through its predicted factors, and it can be recommended
        rec.record_plays("fan", {"NEWSONG-1": 3})
        seeds = rec.recommend(seed_song_ids=[twin], k=rec.bundle.n_songs - 1, shares={C.ACOUSTIC: 1.0})
        assert "NEWSONG-1" in seeds.song_ids and seeds.song_ids[0] == "LOUD"
        rec.add_song("NEWSONG-2", title="metadata only")
        assert rec.song("NEWSONG-2").sources == ()
    with pmrs.Recommender.open(fresh, live=True, encoder=enc) as again:   # replayed, in order
        assert again.song("NEWSONG-1").title.startswith("Fresh") and "fan" in again.live.users


def test_a_log_that_cannot_be_written_refuses_the_write_and_reads_go_on(fresh):
    with pmrs.Recommender.open(fresh, live=True) as rec:
        user = rec.bundle.user_ids[4].decode()
        conn = rec.live.log._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")       # the disk is full
        big = {rec.bundle.song_id(r): 1 for r in range(0, rec.bundle.n_songs, 3)}
        accepted = 0
        with pytest.raises(LogUnavailable, match="full"):
            for i in range(200):
                rec.record_plays(user, big, request_id=f"fill-{i}")
                accepted += 1
        # what was acknowledged is applied, what was refused is not
        assert rec.live.seq == rec.live.log.last_seq() == accepted
        if accepted:
            u = rec.live.users[user]
            brow = rec.bundle.user_row(user)
            assert u.counts.sum() == rec.bundle.play_counts(brow).sum() + accepted * len(big)
        assert rec.recommend(user, k=5).songs


def test_a_rebuild_takes_the_logged_writes_in_exactly_once(serving_workdir, fresh):
    from pmrs.cli import main
    from pmrs.serving.bundle import Bundle

    data = serving_workdir.parent / "data"
    cfg = serving_workdir.parent / "c.toml"
    with pmrs.Recommender.open(fresh, live=True) as rec:
        b = rec.bundle
        known = b.user_ids[0].decode()
        song = next(b.song_id(r) for r in range(b.n_songs) if r not in set(b.played(0).tolist())
                    and b.song_vector(C.COLLABORATIVE, r) is not None)
        clip = sorted((data / "audio").glob("*.wav"))[0]
        rec.record_plays(known, {song: 5})
        rec.record_plays("rebuilt-newcomer", {song: 2})
        added = rec.add_song("REBUILT-NEW", title="Made live", artist="Live Artist", genre="rock",
                             tags=["fresh"], audio=clip.read_bytes(), filename=clip.name)
        assert C.ACOUSTIC in added.song.sources
        rec.record_plays("rebuilt-newcomer", {"REBUILT-NEW": 3})
        last = rec.live.log.last_seq()
    before = Interactions.load(fresh / INTERACTIONS_DIR)
    old_count = before.matrix[before.user_index(known)].toarray()[0][before.song_index(song)] \
        if song.encode() in set(before.song_ids.tolist()) else 0
    common = ["--workdir", str(fresh), "--config", str(cfg), "-q"]
    for args in (["ingest", str(data)], ["train-wmf", "--run", "w2", "--no-select"], ["extract", "--live"],
                 ["train-cnn", "--run", "c2"], ["predict"]):
        assert main(args + common) == 0, args
    build_bundle(fresh, IndexerConfig(recall_queries=20, metadata=False), show_progress=False)
    after = Interactions.load(fresh / INTERACTIONS_DIR)
    assert after.matrix[after.user_index(known)].toarray()[0][after.song_index(song)] == old_count + 5
    assert after.matrix[after.user_index("rebuilt-newcomer")].sum() == 5
    with Bundle.open(C.current_bundle(fresh)) as nb:
        assert nb.manifest["live_seq"] == last
        row = nb.song_row("REBUILT-NEW")
        assert row is not None and nb.song_vector(C.ACOUSTIC, row) is not None
        assert nb.songs([row])[0]["title"] == "Made live"
    with pmrs.Recommender.open(fresh, live=True) as rec:
        assert not rec.live.changed and rec.live_seq == last      # nothing applied twice
        assert rec.song("REBUILT-NEW").title == "Made live"
        rec.record_plays("rebuilt-newcomer", {song: 1})          # a write after the cycle is live
        assert rec.live.users["rebuilt-newcomer"].counts.sum() == 6
    with pmrs.Recommender.open(fresh, live=True) as rec:
        assert set(rec.live.users) == {"rebuilt-newcomer"}


def test_concurrent_writes_are_each_applied_once(fresh):
    import threading

    with pmrs.Recommender.open(fresh, live=True) as rec:
        songs = [rec.bundle.song_id(r) for r in range(10)]
        errors = []

        def writer(t):
            try:
                for i in range(20):
                    rec.record_plays(f"conc-{t}", {songs[i % 10]: 1}, request_id=f"c-{t}-{i}")
                    if i % 5 == 0:   # a retry in the middle of the others
                        assert rec.record_plays(f"conc-{t}", {songs[i % 10]: 1}, request_id=f"c-{t}-{i}").duplicate
            except Exception as exc:   # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert rec.live.log.last_seq() == rec.live.seq == 160
        for t in range(8):
            u = rec.live.users[f"conc-{t}"]
            assert u.counts.sum() == 20 and np.all(u.counts == 2)


def test_an_added_song_gets_the_metadata_vector_the_catalog_would_give_it(fresh):
    from pmrs.catalog import Catalog
    from pmrs.live.songs import MetadataEncoder

    build_bundle(fresh, IndexerConfig(recall_queries=20), show_progress=False)   # with the metadata source
    with Catalog(fresh / "catalog.lmdb") as cat:
        fields = dict(cat.items())
        tags = dict(cat.items_tags())
    with pmrs.Recommender.open(fresh, live=True) as rec:
        b = rec.bundle
        assert C.METADATA in b.source_names and "metadata" in b.manifest["live_models"]
        model = MetadataEncoder(b, b.manifest["live_models"]["metadata"]).model
        # the model reproduces the bundle's vector of a catalog song from its fields and tags
        for sid in list(tags)[:5]:
            got = model.vector(fields[sid], tags[sid])
            want = b.song_vector(C.METADATA, b.song_row(sid))
            assert float(got @ want) > 0.999, sid
        # a song added live with a catalog song's fields lands next to it
        sid = max(tags, key=lambda s: len(tags[s]))
        f = fields[sid]
        added = rec.add_song("META-TWIN", title="twin", artist=f["artist"], release=f["release"], year=f["year"],
                             genre=f["genre"], tags=sorted(tags[sid]))
        assert C.METADATA in added.song.sources
        near = rec.similar_songs("META-TWIN", k=3, mode=C.METADATA).song_ids
        assert sid in near
        nothing = rec.add_song("META-NOTHING", title="unknown words only")
        assert C.METADATA not in nothing.song.sources


def test_plays_reach_a_neighbours_source_too(serving_workdir, fresh):
    from pmrs.cli import main

    assert main(["train-neighbours", "--workdir", str(fresh), "--no-select", "-q"]) == 0
    build_bundle(fresh, IndexerConfig(recall_queries=20, metadata=False), show_progress=False)
    with pmrs.Recommender.open(fresh, live=True) as rec:
        assert C.NEIGHBOURS in rec.sources
        b = rec.bundle
        songs = [b.song_id(r) for r in range(b.n_songs) if b.covers(C.NEIGHBOURS, [r])[0]][:3]
        rec.record_plays("nb-listener", {s: 2 for s in songs})
        got = rec.recommend("nb-listener", k=5, shares={C.NEIGHBOURS: 1.0})
        assert len(got.songs) == 5 and not set(songs) & set(got.song_ids)
        assert all(C.NEIGHBOURS in s.sources for s in got.songs)


def test_a_replay_reuses_the_logged_songs_encodings(fresh):
    calls = []

    def counting(fields, clip):
        calls.append(fields["song_id"])
        return EncodedSong({C.ACOUSTIC: np.full(8, 0.5, np.float32)}, np.ones(16, np.float32) / 4.0)

    with pmrs.Recommender.open(fresh, live=True, encoder=counting) as rec:
        rec.add_song("CACHED-1", title="one")
        rec.add_song("CACHED-2", title="two")
    assert calls == ["CACHED-1", "CACHED-2"]
    with pmrs.Recommender.open(fresh, live=True, encoder=counting) as rec:   # a restart: no encoding
        assert calls == ["CACHED-1", "CACHED-2"]
        assert C.ACOUSTIC in rec.song("CACHED-2").sources
        np.testing.assert_allclose(rec.live.songs.vectors[C.ACOUSTIC][1][1], np.full(8, 0.5))


def test_a_read_only_log_reads_every_write_creates_nothing_and_refuses_writes(tmp_path):
    path = tmp_path / "live" / "writes.sqlite"
    with pytest.raises(LogUnavailable):
        WriteLog(path, readonly=True)            # no log yet: nothing is created
    assert not path.parent.exists()
    with WriteLog(path) as wlog:
        first = wlog.append("plays", {"user_id": "u1", "plays": [["s1", 2]]}, "r1")
        wlog.append("song", {"song_id": "new-1", "title": "T"}, "r2", clip=("a.ogg", b"OggS..."))
    # the writer has closed: the WAL was checkpointed and its files removed; a reader still reads
    with WriteLog(path, readonly=True) as reader:
        assert [(w.seq, w.kind) for w in reader.since(0)] == [(first.seq, "plays"), (first.seq + 1, "song")]
        assert reader.clip(first.seq + 1) == ("a.ogg", b"OggS...")
        with pytest.raises(LogUnavailable):
            reader.append("plays", {"user_id": "u2", "plays": [["s1", 1]]}, "r3")
        # and while a writer has it open, it sees new writes
        with WriteLog(path) as writer:
            third = writer.append("plays", {"user_id": "u3", "plays": [["s1", 1]]}, "r4")
            assert [w.seq for w in reader.since(first.seq + 1)] == [third.seq]
    assert WriteLog(path).last_seq() == third.seq
