"""Why each song is there (pmrs.serving.explain): every reason checked against a brute-force
recomputation from the bundle."""

import shutil

import numpy as np
import pytest

import pmrs
from pmrs.cli import main
from pmrs.indexing import IndexerConfig, build_bundle


@pytest.fixture(scope="module")
def work(serving_workdir, tmp_path_factory):
    """Four sources: collaborative, acoustic, metadata, neighbours."""
    work = tmp_path_factory.mktemp("explain") / "work"
    shutil.copytree(serving_workdir, work)
    assert main(["train-neighbours", "--workdir", str(work), "--no-select", "-q"]) == 0
    build_bundle(work, IndexerConfig(recall_queries=20), show_progress=False)
    return work


@pytest.fixture(scope="module")
def rec(work):
    with pmrs.Recommender.open(work) as r:
        yield r


def _user(rec, i=3):
    return rec.bundle.user_ids[i].decode()


def test_every_song_has_one_reason_per_source_that_placed_it(rec):
    assert rec.sources == ["collaborative", "acoustic", "metadata", "neighbours"]
    got = rec.recommend(_user(rec), k=20, explain=True, shares={"metadata": 0.2, "neighbours": 0.3})
    assert not got.precomputed and len(got.songs) == 20
    from pmrs.serving.contract import resolve_shares

    share = resolve_shares(rec.sources, rec.defaults.shares, {"metadata": 0.2, "neighbours": 0.3})
    for s in got.songs:
        assert tuple(r.source for r in s.reasons) == s.sources
        for r in s.reasons:
            assert r.rank >= 1 and r.text and r.share == pytest.approx(share[r.source], abs=1e-6)
    plain = rec.recommend(_user(rec), k=20, shares={"metadata": 0.2, "neighbours": 0.3})
    assert [s.song_id for s in plain.songs] == [s.song_id for s in got.songs]   # explaining changes nothing
    assert all(s.reasons == () for s in plain.songs)


def test_collaborative_terms_add_up_to_the_score_and_name_played_songs(rec):
    b = rec.bundle
    user = _user(rec)
    row = b.user_row(user)
    played = set(b.song_id(r) for r in b.played(row).tolist())
    got = rec.recommend(user, k=10, explain=True, shares={"collaborative": 1.0})
    x = b.fold_in(b.played(row), b.play_counts(row))
    for s in got.songs:
        (why,) = [r for r in s.reasons if r.source == "collaborative"]
        assert why.evidence and all(e.song_id in played for e in why.evidence)
        y = b.song_vector("collaborative", b.song_row(s.song_id))
        rows, terms = b.fold_in_terms(y, b.played(row), b.play_counts(row))
        assert terms.sum() == pytest.approx(float(y @ x), rel=1e-4)             # the score, split
        top = sorted(zip(terms.tolist(), [b.song_id(r) for r in rows]), reverse=True)[:len(why.evidence)]
        assert [e.song_id for e in why.evidence] == [sid for _, sid in top]
        assert [e.weight for e in why.evidence] == pytest.approx([t / terms.sum() for t, _ in top])


def test_neighbours_evidence_is_the_stored_similarity(rec, work):
    from pmrs.collaborative.neighbours import load_run
    from pmrs.artifacts import list_runs

    model, ids = load_run(list_runs(work / "models" / "neighbours")[-1])
    index = {s.decode(): i for i, s in enumerate(ids)}
    b = rec.bundle
    user = _user(rec)
    played = [b.song_id(r) for r in b.played(b.user_row(user)).tolist()]
    got = rec.recommend(user, k=10, explain=True, shares={"neighbours": 1.0})
    checked = 0
    for s in got.songs:
        for r in s.reasons:
            if r.source != "neighbours":
                continue
            assert r.evidence
            for e in r.evidence:
                assert e.song_id in played
                assert e.weight == pytest.approx(model.similarity[index[e.song_id], index[s.song_id]], rel=1e-6)
                checked += 1
            # the strongest of the listener's songs for this song comes first
            sims = [model.similarity[index[p], index[s.song_id]] for p in played if p in index]
            assert r.evidence[0].weight == pytest.approx(max(sims), rel=1e-6)
    assert checked > 0


def test_similar_songs_and_seed_listeners_are_explained_by_the_seed(rec):
    b = rec.bundle
    seed = next(b.song_id(r) for r in range(b.n_songs) if len(b.song_sources(r)) >= 3)
    got = rec.similar_songs(seed, k=8, explain=True)
    assert got.songs and all(s.reasons for s in got.songs)
    for s in got.songs:
        for r in s.reasons:
            assert all(e.song_id == seed for e in r.evidence)
            if r.source == "metadata":
                assert all(x.split(":")[0] in ("artist", "genre", "decade") for x in r.shared)
    seeds = [b.song_id(r) for r in b.played(b.user_row(_user(rec, 5)))[:4].tolist()]
    got = rec.recommend(seed_song_ids=seeds, k=6, explain=True)
    assert got.folded_in and all(e.song_id in seeds for s in got.songs for r in s.reasons for e in r.evidence)


def test_a_live_user_and_a_live_song_are_explained(work, tmp_path):
    live = tmp_path / "w"
    shutil.copytree(work, live)
    with pmrs.Recommender.open(live, live=True) as rec:
        b = rec.bundle
        songs = [b.song_id(r) for r in b.played(b.user_row(_user(rec)))[:5].tolist()]
        rec.record_plays("explained-newcomer", {s: 2 for s in songs})
        got = rec.recommend("explained-newcomer", k=5, explain=True)
        assert got.songs and all(e.song_id in songs for s in got.songs for r in s.reasons for e in r.evidence)
        rec.add_song("SOEXPLAINLIVE00001", title="Brand new", artist=b.songs([0])[0]["artist"],
                     genre=b.songs([0])[0]["genre"])
        sim = rec.similar_songs("SOEXPLAINLIVE00001", k=5, explain=True, mode="metadata")
        assert sim.songs and all(r.source == "metadata" for s in sim.songs for r in s.reasons)


def test_explanations_over_grpc_and_the_command_line(work, tmp_path, capsys):
    # the same reasons through pmrs-server, pmrs.connect and pmrs-client --explain
    from pmrs_clients.cli import main as client
    from servers import ServerProcess

    server = ServerProcess(work, tmp_path / "server.log")
    try:
        with pmrs.Recommender.open(work) as here, pmrs.connect(server.address) as there:
            user = _user(here)
            a = here.recommend(user, k=6, explain=True)
            b = there.recommend(user, k=6, explain=True)
            assert [s.song_id for s in a.songs] == [s.song_id for s in b.songs]
            for x, y in zip(a.songs, b.songs):
                assert [(r.source, r.rank, r.text, r.shared, [e.song_id for e in r.evidence]) for r in x.reasons] == \
                       [(r.source, r.rank, r.text, r.shared, [e.song_id for e in r.evidence]) for r in y.reasons]
                assert [r.share for r in y.reasons] == pytest.approx([r.share for r in x.reasons], abs=1e-6)
        capsys.readouterr()
        assert client(["--target", server.address, "recommend", user, "-k", "3", "--explain"]) == 0
        out = capsys.readouterr().out
        assert "why:" in out and all(r.text in out for s in a.songs[:3] for r in s.reasons)
    finally:
        server.stop()


def test_similarity_is_the_stored_matrix_for_many_songs_at_once(rec):
    """Bundle.similarity (one pass over the listener's stored rows) against the matrix itself."""
    import scipy.sparse as sp

    nm = rec.bundle._neighbours["neighbours"]
    n = nm.n_songs
    full = sp.csr_matrix((np.asarray(nm.data), np.asarray(nm.indices), np.asarray(nm.indptr)), shape=(n, n)).toarray()
    rng = np.random.default_rng(0)
    src = np.concatenate([rng.choice(n, 40, replace=False), [-1, n + 5]])   # and rows that are not songs
    dst = np.concatenate([np.flatnonzero(full[src[0]])[:5], rng.choice(n, 30, replace=False)])
    dst = np.unique(dst)
    got = rec.bundle.similarity("neighbours", src, dst)
    want = np.zeros((len(dst), len(src)), np.float32)
    ok = (src >= 0) & (src < n)
    want[:, ok] = full[np.ix_(src[ok], dst)].T
    assert got.shape == want.shape and np.count_nonzero(want) > 0
    np.testing.assert_array_equal(got, want)


def test_a_song_nobody_played_is_not_said_to_have_listeners(rec):
    b = rec.bundle
    played = b.covers("collaborative", np.arange(b.n_songs))
    cold = [b.song_id(r) for r in np.flatnonzero(~played & b.covers("acoustic", np.arange(b.n_songs)))[:1].tolist()]
    warm = [b.song_id(int(np.flatnonzero(played)[0]))]
    assert cold, "the test world has songs nobody played, with predicted vectors"
    got = rec.recommend(seed_song_ids=cold, k=5, explain=True, shares={"collaborative": 1.0})
    why = [r for s in got.songs for r in s.reasons if r.source == "collaborative"]
    assert why and all("nobody has played" in r.text and "listeners of" not in r.text for r in why)
    assert all(e.song_id == cold[0] for r in why for e in r.evidence)
    got = rec.recommend(seed_song_ids=warm, k=5, explain=True, shares={"collaborative": 1.0})
    why = [r for s in got.songs for r in s.reasons if r.source == "collaborative"]
    assert why and all("listeners of" in r.text for r in why)
