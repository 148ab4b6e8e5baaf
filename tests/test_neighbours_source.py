"""The neighbourhood model as a bundle source: a sparse ``neighbours`` source built from a
``pmrs train-neighbours`` run (share chosen on validation), validated on open, blended by the
server with the other sources, over a real gRPC port; bundles without it keep working."""

import json
import shutil

import grpc
import numpy as np
import pytest
import scipy.sparse as sp

import pmrs
from pmrs_indexer.cli import main as indexer_main
from pmrs.cli import main as pmrs_main
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.collaborative.share import ShareConfig, choose_neighbours_share
from pmrs.interactions import Interactions
from pmrs.collaborative.neighbours import load_run as load_neighbours
from pmrs.serving import contract as C
from pmrs.serving.bundle import Bundle
from pmrs.blend import interleave
from pmrs.serving.contract import quotas
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc
from pmrs_server.main import serve


@pytest.fixture(scope="module")
def nwork(serving_workdir, tmp_path_factory):
    """The tiny serving work directory with a neighbourhood run (settings and share chosen on
    validation) and a bundle built from it."""
    work = tmp_path_factory.mktemp("nsource") / "work"
    shutil.copytree(serving_workdir, work)
    # (settings given: the search for them is tests/test_selection.py's; the share is still chosen)
    assert pmrs_main(["train-neighbours", "--workdir", str(work), "--run", "n1", "--alpha", "0.3", "-q"]) == 0
    out = build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    return work, out


@pytest.fixture(scope="module")
def rec(nwork):
    with pmrs.Recommender.open(nwork[1], verify=True) as r:
        yield r


def _run(work):
    model, song_ids = load_neighbours(work / "models" / "neighbours" / "n1")
    return model, song_ids


def _run_rows(bundle, song_ids):
    return np.asarray(bundle.song_rows(song_ids), np.int64)


def test_the_run_records_the_share_chosen_on_validation(nwork):
    work, _ = nwork
    run = work / "models" / "neighbours" / "n1"
    config, log = (json.loads((run / name).read_text()) for name in ("config.json", "train_log.json"))
    chosen = config["serving_share"]
    assert chosen == log["serving_share"] and chosen["metric"] == "map@500+recall@50"
    table = chosen["table"]
    assert [t["share"] for t in table] == list(ShareConfig().shares)
    best = max(t["score"] for t in table)
    assert chosen["share"] == min(t["share"] for t in table if t["score"] == best)
    # the two ends are the two models alone: they rank differently
    assert (table[0]["map@500"], table[0]["recall@50"]) != (table[-1]["map@500"], table[-1]["recall@50"])
    assert chosen["validation_users"] > 0 and chosen["wmf_run"] == "w1"


def test_the_bundle_holds_the_neighbours_source_and_validates(nwork, rec):
    work, out = nwork
    b = rec.bundle
    m = json.loads((out / "manifest.json").read_text())
    assert m["format_version"] == C.FORMAT_VERSION == 3
    assert b.source_names == ["collaborative", "acoustic", "metadata", "neighbours"]
    src = m["sources"]["neighbours"]
    assert (src["kind"], src["space"], src["covers_cold"]) == ("neighbours", "cooccurrence", False)
    assert all(m["checksums"][f] for f in C.neighbour_files("neighbours").values())
    assert m["source_runs"]["neighbours"].endswith("n1")
    # the default shares: metadata's chosen on validation through the served blend, and the
    # neighbours' validated share of the play-based part, scaled by what acoustic (0.2) and
    # metadata leave
    chosen = json.loads((work / "models" / "neighbours" / "n1" / "config.json").read_text())["serving_share"]
    assert {t["metadata_share"] for t in chosen["metadata_table"]} == {0.0, 0.05, 0.1, 0.2, 0.3}
    best = max(chosen["metadata_table"], key=lambda t: t["score"])
    assert chosen["metadata_share"] == best["metadata_share"] == b.defaults.shares["metadata"]
    assert m["sources"]["metadata"]["settings"]["share_from"] == "validation"
    assert b.defaults.shares["neighbours"] == pytest.approx(round(chosen["share"] * (0.8 - chosen["metadata_share"]), 4))
    assert src["settings"]["share_from"] == "validation"
    # the stored CSR is the run's matrix over the bundle's song rows
    model, song_ids = _run(work)
    rows = _run_rows(b, song_ids)
    assert (rows >= 0).all()
    files = C.neighbour_files("neighbours")
    served = sp.csr_matrix(tuple(np.load(out / files[p]) for p in ("data", "indices", "indptr")),
                           shape=(b.n_songs, b.n_songs))
    coo = model.similarity.tocoo()
    expected = sp.csr_matrix((coo.data, (rows[coo.row], rows[coo.col])), shape=(b.n_songs, b.n_songs))
    assert abs(served - expected).max() == 0 and served.nnz == model.similarity.nnz
    # only songs with plays have neighbours; cold songs (audio only) have none
    inter = Interactions.load(work / "interactions")
    played = np.zeros(b.n_songs, bool)
    played[_run_rows(b, inter.song_ids)] = True
    covered = b.covers("neighbours", np.arange(b.n_songs))
    assert covered.any() and not (covered & ~played).any() and not played.all()


def test_recommend_draws_from_the_neighbours_source(nwork, rec):
    work, _ = nwork
    b = rec.bundle
    model, song_ids = _run(work)
    rows = _run_rows(b, song_ids)
    inter = Interactions.load(work / "interactions")
    for u in (0, 7, 42):
        uid = b.user_ids[u].decode()
        # the neighbours source alone: the top of (played row @ S), played songs left out
        got = rec.recommend(uid, k=10, shares={"neighbours": 1.0})
        want, scores = model.recommend(inter.matrix[u].indices, 10)
        assert [s.song_id for s in got.songs] == [song_ids[i].decode() for i in want]
        assert np.allclose([s.score for s in got.songs], scores, rtol=1e-5)
        assert all(s.sources[-1] == "neighbours" for s in got.songs)
        played = set(b.played(u).tolist())
        assert not played & {int(b.song_row(s.song_id)) for s in got.songs}
        # blended: the neighbours source's quota of the default list is its songs
        blended = rec.recommend(uid, k=10, shares={"neighbours": 0.5})
        assert sum("neighbours" in s.sources for s in blended.songs) >= 5
    # seed songs: the sum of their rows, the seeds left out
    seeds = [song_ids[i].decode() for i in (1, 5, 9)]
    got = rec.recommend(seed_song_ids=seeds, k=8, shares={"neighbours": 1.0})
    want, _ = model.recommend(np.asarray([1, 5, 9]), 8)
    assert got.folded_in and [s.song_id for s in got.songs] == [song_ids[i].decode() for i in want]
    assert rows.size  # (rows of the run resolve in the bundle)


def test_similar_songs_mode_neighbours_is_the_songs_row(nwork, rec):
    work, _ = nwork
    b = rec.bundle
    model, song_ids = _run(work)
    for i in (0, 3, 11):
        got = rec.similar_songs(song_ids[i].decode(), k=6, mode="neighbours")
        want, scores = model.similar_songs(i, 6)
        assert [s.song_id for s in got.songs] == [song_ids[j].decode() for j in want]
        assert np.allclose([s.score for s in got.songs], scores, rtol=1e-6)
        assert all(s.sources == ("neighbours",) for s in got.songs)
    cold = next(r for r in range(b.n_songs) if not b.covers("neighbours", [r])[0])
    with pytest.raises(pmrs.NotFound, match="no neighbours"):
        rec.similar_songs(b.song_id(cold), mode="neighbours")
    assert "neighbours" not in rec.song(b.song_id(cold)).sources
    assert "neighbours" in rec.song(song_ids[0].decode()).sources


def test_default_lists_equal_the_computed_answers(rec):
    b = rec.bundle
    assert rec.defaults.shares["neighbours"] > 0 and b.lists["recommend"].quotas["neighbours"] > 0
    drawn = 0
    for u in range(b.n_users):
        uid = b.user_ids[u].decode()
        listed = rec.recommend(uid)
        computed = rec.recommend(uid, filters=pmrs.Filters(exclude_artists=("no such artist",)))
        assert listed.precomputed and not computed.precomputed
        assert listed.songs == computed.songs
        drawn += any("neighbours" in s.sources for s in listed.songs)
    assert drawn == b.n_users
    for r in range(0, b.n_songs, 7):
        sid = b.song_id(r)
        try:
            computed = rec.similar_songs(sid, filters=pmrs.Filters(exclude_artists=("no such artist",)))
        except pmrs.NotFound:
            continue
        assert rec.similar_songs(sid).songs == computed.songs


def test_info_lists_the_neighbours_source(rec):
    info = rec.info()
    src = {s.name: s for s in info.sources}["neighbours"]
    b = rec.bundle
    assert (src.space, src.covers_cold, src.recall_at_10) == ("cooccurrence", False, 1.0)
    assert src.vectors == int(b.covers("neighbours", np.arange(b.n_songs)).sum()) > 0
    assert src.spec.startswith("sparse top-") and src.dimension > 0
    assert src.default_share == pytest.approx(rec.defaults.shares["neighbours"])
    assert info.format_version == 3 and "neighbours" in info.source_runs


def _copy(work, tmp_path):
    """A copy of the work directory without its bundles (builds there prune nothing in use)."""
    copy = tmp_path / "work"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns("bundles"))
    return copy


def test_grpc_recommend_and_similar_songs_draw_from_neighbours(nwork, tmp_path):
    work = _copy(nwork[0], tmp_path)
    build_bundle(work, IndexerConfig(recall_queries=50), show_progress=False)
    running = serve(work, bind="127.0.0.1:0", workers=2, poll_seconds=3600)
    try:
        with grpc.insecure_channel(running.address) as channel, running.holder.use() as rec:
            stub = pb_grpc.RecommenderStub(channel)
            info = stub.GetBundleInfo(pb.GetBundleInfoRequest())
            ix = {i.name: i for i in info.indexes}["neighbours"]
            assert (ix.space, ix.covers_cold) == ("cooccurrence", False) and ix.vectors > 0
            assert ix.default_share == pytest.approx(rec.defaults.shares["neighbours"], abs=1e-6)
            b = rec.bundle
            uid = b.user_ids[5].decode()
            resp = stub.Recommend(pb.RecommendRequest(user_id=uid, k=10, shares={"neighbours": 0.6}))
            want = rec.recommend(uid, k=10, shares={"neighbours": 0.6})
            assert [s.song_id for s in resp.songs] == [s.song_id for s in want.songs]
            assert [tuple(s.sources) for s in resp.songs] == [s.sources for s in want.songs]
            assert sum("neighbours" in s.sources for s in resp.songs) >= 6
            # the default request (answered from the default lists) draws from it too
            resp = stub.Recommend(pb.RecommendRequest(user_id=uid))
            assert any("neighbours" in s.sources for s in resp.songs)
            song = b.song_id(int(b.played(5)[0]))
            resp = stub.SimilarSongs(pb.SimilarSongsRequest(song_id=song, k=5,
                                                            mode=pb.SIMILARITY_MODE_NEIGHBOURS))
            assert len(resp.songs) == 5 and all(tuple(s.sources) == ("neighbours",) for s in resp.songs)
            assert [s.song_id for s in resp.songs] == \
                [s.song_id for s in rec.similar_songs(song, k=5, mode="neighbours").songs]
    finally:
        running.stop(grace=0)


def _damage(out, tmp_path, part, change):
    copy = tmp_path / f"{out.name}-{part}"
    shutil.copytree(out, copy)
    path = copy / C.neighbour_files("neighbours")[part]
    a = np.load(path)
    change(a)
    np.save(path, a)
    return copy


@pytest.mark.parametrize("part,change,message", [
    ("data", lambda a: a.__setitem__(3, np.nan), "neighbours similarities are not finite"),
    ("indices", lambda a: a.__setitem__(slice(0, 2), a[1::-1].copy()), "not sorted and unique within a row"),
    ("indices", lambda a: a.__setitem__(-1, 10 ** 6), "neighbours song rows are out of"),
    ("indptr", lambda a: a.__setitem__(-1, a[-1] - 1), "indptr does not delimit"),
])
def test_a_damaged_neighbour_matrix_is_refused(nwork, tmp_path, part, change, message):
    _, out = nwork
    copy = _damage(out, tmp_path, part, change)
    with pytest.raises(C.ContractError, match=message):
        Bundle.open(copy)
    with pytest.raises(C.ContractError, match=C.neighbour_files("neighbours")[part]):
        Bundle.open(copy, verify=True)


def test_a_manifest_with_an_unknown_source_kind_is_refused(nwork, tmp_path):
    _, out = nwork
    copy = tmp_path / "kind"
    shutil.copytree(out, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["sources"]["neighbours"]["kind"] = "graph"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(C.ContractError, match="kind 'graph'"):
        Bundle.open(copy)


def test_no_neighbours_leaves_it_out_and_the_bundle_still_works(nwork, tmp_path):
    work = _copy(nwork[0], tmp_path)
    assert indexer_main(["build", "--workdir", str(work), "--no-neighbours", "--no-default-lists", "-q"]) == 0
    with pmrs.Recommender.open(work) as r:
        assert r.sources == ["collaborative", "acoustic", "metadata"]
        assert "neighbours" not in r.defaults.shares
        assert len(r.recommend(r.bundle.user_ids[0].decode(), k=5).songs) == 5
        with pytest.raises(pmrs.InvalidArgument):
            r.similar_songs(r.bundle.song_id(0), mode="neighbours")
    # a given share replaces the validated one
    assert indexer_main(["build", "--workdir", str(work), "--neighbours-share", "0.3", "--no-default-lists",
                         "-q"]) == 0
    with pmrs.Recommender.open(work) as r:
        assert r.sources[-1] == "neighbours" and r.defaults.shares["neighbours"] == 0.3
        spec = r.bundle.manifest["sources"]["neighbours"]["settings"]
        assert spec["share_from"] == "given"


def test_interleave_is_the_blend_of_two_lists():
    a = (np.array([1, 2, 3, 4]), np.array([4.0, 3.0, 2.0, 1.0]))
    b = (np.array([9, 2, 8]), np.array([0.9, 0.5, 0.1]))
    # two songs each, by normalised score: a's 3 outranks b's 8, but a's quota is spent
    assert interleave([a, b], (0.5, 0.5), 4) == [1, 9, 2, 8]
    assert interleave([a, b], (1.0, 0.0), 3) == [1, 2, 3]
    assert interleave([a, b], (0.0, 1.0), 4) == [9, 2, 8, 1]   # the primary fills what is left
    assert quotas(["0", "1"], {"1": 0.25}, 10) == {"0": 7, "1": 3}


def test_share_choice_on_a_world_where_neighbours_help(serving_workdir):
    inter = Interactions.load(serving_workdir / "interactions")
    # 200 users, about 80 songs and a few thousand plays: all of them, or a sample over the cap
    whole = choose_neighbours_share(inter.matrix, cfg=ShareConfig(shares=(0.0, 0.5, 1.0), validation_users=40))
    assert whole["sampled_users"] == 200 and whole["sampled_plays"] == inter.matrix.nnz
    cap = inter.matrix.nnz // 3
    cfg = ShareConfig(shares=(0.0, 0.5, 1.0), max_plays=cap, validation_users=40)
    out = choose_neighbours_share(inter.matrix, cfg=cfg)
    assert out["sampled_users"] == int(np.ceil(200 * cap / inter.matrix.nnz)) < 200
    assert 0.6 * cap < out["sampled_plays"] < 1.4 * cap
    assert 0 < out["validation_users"] <= 40
    assert [t["share"] for t in out["table"]] == [0.0, 0.5, 1.0]
    assert out["share"] in (0.0, 0.5, 1.0)
    assert max(t["score"] for t in out["table"]) == next(t["score"] for t in out["table"]
                                                         if t["share"] == out["share"])


def test_a_format_2_bundle_still_reads_and_answers_the_same(nwork, tmp_path):
    work = _copy(nwork[0], tmp_path)
    out = build_bundle(work, IndexerConfig(recall_queries=50, neighbours=False, default_lists=False),
                       show_progress=False)
    with pmrs.Recommender.open(out) as r:
        uid = r.bundle.user_ids[3].decode()
        before = (r.recommend(uid, k=12).songs, r.similar_songs(r.bundle.song_id(int(r.bundle.played(3)[0]))).songs)
    m = json.loads((out / "manifest.json").read_text())
    m["format_version"] = 2                       # as today's indexer wrote it before source kinds
    for src in m["sources"].values():
        del src["kind"]
    (out / "manifest.json").write_text(json.dumps(m))
    with pmrs.Recommender.open(out, verify=True) as r:
        assert r.info().format_version == 2
        assert all(s.kind == C.VECTORS for s in r.bundle.sources.values())
        after = (r.recommend(uid, k=12).songs, r.similar_songs(r.bundle.song_id(int(r.bundle.played(3)[0]))).songs)
    assert after == before


def test_dense_and_sparse_sums_and_the_top_cut_agree(rec, monkeypatch):
    from pmrs.serving import bundle as bundle_mod

    nm = rec.bundle._neighbours["neighbours"]
    for u in range(0, rec.bundle.n_users, 17):
        rows = np.unique(rec.bundle.played(u))
        monkeypatch.setattr(bundle_mod, "DENSE_SUMS", 1e9)
        sparse_cols, sparse_sums = nm.scores(rows)
        monkeypatch.setattr(bundle_mod, "DENSE_SUMS", 0.0)
        dense_cols, dense_sums = nm.scores(rows)
        assert np.array_equal(sparse_cols, dense_cols) and np.array_equal(sparse_sums, dense_sums)
        for top in (1, 3, 10):
            c, v = nm.scores(rows, top)
            assert np.array_equal(c, dense_cols[:top]) and np.array_equal(v, dense_sums[:top])
    # ties at the cut: the lower rows first, as the full sort has them
    n = 40
    indptr = np.zeros(n + 1, np.int64)
    indptr[1:] = 30
    indptr[0] = 0
    tied = bundle_mod._NeighbourMatrix("t", {}, indptr, np.arange(10, 40, dtype=np.int32),
                                       np.r_[np.full(20, 0.5), np.full(10, 0.25)].astype(np.float32), n)
    cols, vals = tied.scores(np.asarray([0]), 5)
    assert cols.tolist() == [10, 11, 12, 13, 14] and (vals == 0.5).all()
    cols, _ = tied.scores(np.asarray([0]))
    assert cols[:20].tolist() == list(range(10, 30))


def test_the_served_matrix_does_not_depend_on_the_runs_song_order():
    from pmrs.indexing.build import NeighboursInput, _neighbour_arrays

    n = 30
    ids = np.array([f"S{i:03d}".encode() for i in range(n)])
    m = sp.random(n, n, density=0.2, format="csr", dtype=np.float32, random_state=1)
    universe = np.array(sorted([*ids, b"S999", b"A000"]))   # songs of other sources: empty rows
    a = _neighbour_arrays(universe, NeighboursInput("neighbours", ids, m))
    p = np.random.default_rng(0).permutation(n)
    b = _neighbour_arrays(universe, NeighboursInput("neighbours", ids[p], m[p][:, p]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    indptr, indices, data = a
    assert indptr[1] == 0 and indptr[-1] == indptr[-2] == m.nnz == len(indices)
    served = sp.csr_matrix((data, indices, indptr), shape=(len(universe), len(universe)))
    assert abs(served[1:n + 1, 1:n + 1] - m).max() == 0


def test_several_neighbour_settings_are_chosen_with_their_share_through_the_blend(serving_workdir):
    from pmrs.collaborative.neighbours import NeighboursConfig

    inter = Interactions.load(serving_workdir / "interactions")
    cfg = ShareConfig(shares=(0.0, 0.5, 1.0), validation_users=40)
    settings = [NeighboursConfig(similarity="bm25", neighbours=50),
                NeighboursConfig(similarity="ease", ease_lambda=50.0, neighbours=50)]
    both = choose_neighbours_share(inter.matrix, nb_cfg=settings, cfg=cfg)
    alone = [choose_neighbours_share(inter.matrix, nb_cfg=s, cfg=cfg) for s in settings]
    # each setting's best share scores as it does alone; the pair with the best score is chosen
    assert [f["score"] for f in both["finalists"]] == [max(t["score"] for t in a["table"]) for a in alone]
    j = int(np.argmax([f["score"] for f in both["finalists"]]))
    assert both["neighbours"]["similarity"] == settings[j].similarity
    assert both["share"] == alone[j]["share"] and both["table"] == alone[j]["table"]
