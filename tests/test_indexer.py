"""``indexer build``: bundle layout and manifest, index specs and recall, the CURRENT switch,
pruning, failed builds, collaborative-only bundles, the command line."""

import hashlib
import json
import shutil

import faiss
import numpy as np
import pytest

import pmrs.indexing.build as ib
import pmrs.indexing.specs as specs
from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.indexing.config import ACOUSTIC_SHARE_NOT_VALIDATED
from pmrs.blend import candidate_count
from pmrs.indexing.specs import FULL_ANSWERS
from pmrs.indexing.specs import choose_spec, exact_top, needs_l2_augmentation
from pmrs.serving import contract
from pmrs.serving.contract import current_bundle, list_bundles, prune_bundles
from pmrs_indexer.cli import main
from pmrs.acoustic.runs import load_predictions
from pmrs.interactions import Interactions
from pmrs.serving.bundle import Bundle
from pmrs.collaborative.wmf import load_run


@pytest.fixture
def work(serving_workdir, tmp_path):
    w = tmp_path / "work"
    shutil.copytree(serving_workdir, w)
    return w


def _manifest(bundle_dir):
    return json.loads((bundle_dir / "manifest.json").read_text())


def _npy(bundle_dir, name):
    return np.load(bundle_dir / f"{name}.npy", allow_pickle=False)


def _brute_top(queries, vectors, top):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return np.take_along_axis(scores, order, 1), order


def _partials(work):
    return list((work / "bundles").glob(".*.partial"))


def test_spec_choice_and_l2_detection():
    cfg = IndexerConfig()
    assert choose_spec(50_000, None, cfg) == "Flat"
    assert choose_spec(384_546, None, cfg) == "IVF2480,Flat"       # about 4 * sqrt(n)
    assert choose_spec(100_000, None, IndexerConfig(nlist=512)) == "IVF512,Flat"
    assert choose_spec(10, "HNSW32", cfg) == "HNSW32"
    assert needs_l2_augmentation("HNSW32") and needs_l2_augmentation("PCA16,HNSW32,Flat")
    # approximate specs get the reduction by default; without it only graphs do; exact never
    assert needs_l2_augmentation("IVF1024,Flat") and needs_l2_augmentation("IVF4096_HNSW32,Flat")
    assert not needs_l2_augmentation("IVF1024,Flat", l2_reduction=False)
    assert not needs_l2_augmentation("IVF4096_HNSW32,Flat", l2_reduction=False)
    assert needs_l2_augmentation("HNSW32", l2_reduction=False)
    assert not needs_l2_augmentation("Flat") and not needs_l2_augmentation(" flat ")
    for bad in ({"keep": 0}, {"default_k": 0}, {"default_k": 1001}, {"default_acoustic_share": 1.5},
                {"default_diversity": -0.1}, {"list_workers": 0}):
        with pytest.raises(ValueError):
            IndexerConfig(**bad)


def test_exact_top_is_brute_force_inner_product():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(500, 9)).astype(np.float32)
    queries = rng.normal(size=(37, 9)).astype(np.float32) * rng.uniform(0.1, 5, size=(37, 1)).astype(np.float32)
    ids = exact_top(queries, vectors, 12)
    ref = np.argsort(-(queries.astype(np.float64) @ vectors.T.astype(np.float64)), axis=1, kind="stable")[:, :12]
    assert ids.shape == (37, 12) and ids.dtype == np.int64 and (ids == ref).all()
    assert exact_top(queries, vectors[:5], 12).shape == (37, 5)     # fewer vectors than asked


def test_bundle_layout_manifest_and_alignment(work):
    out = build_bundle(work)
    assert current_bundle(work) == out
    assert (work / "bundles" / "CURRENT").read_text().strip() == out.name
    m = _manifest(out)
    assert m["format_version"] == contract.FORMAT_VERSION and m["version"] == out.name and m["created_at"].endswith("Z")
    assert m["source_runs"]["wmf"].endswith("w1") and m["source_runs"]["cnn"].endswith("c1")
    assert {"alpha", "eps", "regularization", "factors"} <= set(m["wmf_config"])
    assert m["counts"] == {"users": 200, "songs": 80, "songs_with_plays": 64, "songs_with_factors": 64,
                           "songs_with_audio": 80, "plays": m["counts"]["plays"]}
    assert m["dimensions"] == {"factors": 8, "embedding": 16} and len(m["genres"]) == 4
    # the acoustic share is not chosen on validation, and the manifest says why
    ac = m["sources"]["acoustic"]["settings"]
    assert (ac["share_from"], ac["share_why"]) == ("fixed", ACOUSTIC_SHARE_NOT_VALIDATED)
    assert m["defaults"]["shares"]["acoustic"] == IndexerConfig().default_acoustic_share
    for name, n in (("collaborative", 64), ("acoustic", 80)):
        ix = m["sources"][name]["index"]
        assert (ix["spec"], ix["metric"], ix["transform"], ix["search_params"]) == \
            ("Flat", "inner_product", "none", {})
        assert ix["vectors"] == n and ix["dimension"] == 8 and ix["recall_at_10"] == 1.0
        assert ix["file"] == f"{name}.faiss"
    files = {p.name for p in out.iterdir()}
    assert set(m["checksums"]) == files - {"manifest.json"}
    for name, digest in m["checksums"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    from pmrs.catalog import Catalog    # the snapshot holds every song, track and tag (no similars)
    with Catalog(work / "catalog.lmdb") as src, Catalog(out / "catalog.lmdb") as snap:
        assert list(snap.items()) == list(src.items()) and list(snap.tracks()) == list(src.tracks())
        assert list(snap.items_tags()) == list(src.items_tags()) and snap.info() == src.info()
        assert list(snap.items_similars()) == [] and list(src.items_similars())

    wmf, wmf_users, wmf_songs = load_run(work / "models" / "wmf" / "w1")
    pred = load_predictions(work / "models" / "cnn" / "c1" / "predictions")
    song_ids = _npy(out, "song_ids")
    assert song_ids.dtype.kind == "S" and (song_ids[1:] > song_ids[:-1]).all()
    np.testing.assert_array_equal(song_ids, np.union1d(wmf_songs, pred["song_ids"]))
    np.testing.assert_array_equal(_npy(out, "user_ids"), wmf_users)
    np.testing.assert_array_equal(_npy(out, "user_factors"), wmf.user_factors)
    collab_rows = _npy(out, "collaborative_rows")
    assert collab_rows.dtype == np.int32 and (np.diff(collab_rows) > 0).all()
    np.testing.assert_array_equal(song_ids[collab_rows], wmf_songs)
    np.testing.assert_array_equal(_npy(out, "collaborative_vectors"), wmf.song_factors)
    acoustic_rows = _npy(out, "acoustic_rows")
    assert acoustic_rows.dtype == np.int32 and (np.diff(acoustic_rows) > 0).all()
    np.testing.assert_array_equal(song_ids[acoustic_rows], pred["song_ids"])
    np.testing.assert_array_equal(_npy(out, "acoustic_vectors"), pred["factors"])
    emb = _npy(out, "acoustic_embeddings")
    assert emb.shape == (80, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, pred["embeddings"] / np.linalg.norm(pred["embeddings"], axis=1,
                                                                         keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(_npy(out, "genre_probs"), pred["genre_probs"])

    inter = Interactions.load(work / "interactions")
    indptr, indices = _npy(out, "played_indptr"), _npy(out, "played_indices")
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    np.testing.assert_array_equal(indptr, inter.matrix.indptr)
    np.testing.assert_array_equal(song_ids[indices], inter.song_ids[inter.matrix.indices])
    assert m["counts"]["plays"] == inter.matrix.nnz
    for name in ("collaborative", "acoustic"):
        assert faiss.read_index(str(out / f"{name}.faiss")).ntotal == m["sources"][name]["index"]["vectors"]


def test_exact_indexes_match_brute_force(work):
    out = build_bundle(work)
    users = _npy(out, "user_factors")
    with Bundle.open(out, verify=True) as b:
        for name, prefix in (("collaborative", "collaborative"), ("acoustic", "acoustic")):
            vectors, rows = _npy(out, f"{prefix}_vectors"), _npy(out, f"{prefix}_rows")
            scores, found = b.search(name, users, 10)
            ref_scores, ref_pos = _brute_top(users, vectors, 10)
            np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)
            # ids agree wherever the reference score is not tied with a neighbour
            distinct = np.ones_like(ref_scores, dtype=bool)
            gaps = np.abs(np.diff(ref_scores, axis=1)) > 1e-6
            distinct[:, 1:] &= gaps
            distinct[:, :-1] &= gaps
            assert (found[distinct] == rows[ref_pos][distinct]).all()


@pytest.mark.parametrize("l2_reduction", [True, False])
def test_ivf_override_raises_nprobe_until_recall(work, l2_reduction):
    out = build_bundle(work, IndexerConfig(collaborative_spec="IVF8,Flat", acoustic_spec="IVF8,Flat",
                                           l2_reduction=l2_reduction))
    m = _manifest(out)
    users = _npy(out, "user_factors")
    for name, prefix in (("collaborative", "collaborative"), ("acoustic", "acoustic")):
        ix = m["sources"][name]["index"]
        assert ix["spec"] == "IVF8,Flat"
        assert ix["transform"] == ("l2_augmented" if l2_reduction else "none")
        assert ix["faiss_metric"] == ("L2" if l2_reduction else "inner_product")
        tried = ix["recall_by_param"]
        nprobe = ix["search_params"]["nprobe"]
        # doubling from 1 up to the first value that reaches the target, then bisection below it
        n_doubling = next(i for i, t in enumerate(tried) if t["recall_at_10"] >= 0.95) + 1
        assert [t["nprobe"] for t in tried[:n_doubling]] == [2 ** i for i in range(n_doubling)]
        assert all(tried[n_doubling - 2]["nprobe"] < t["nprobe"] < tried[n_doubling - 1]["nprobe"]
                   for t in tried[n_doubling:])
        chosen = next(t for t in tried if t["nprobe"] == nprobe)
        assert ix["recall_at_10"] == chosen["recall_at_10"] >= 0.95
        # both kinds of query reach the target; the recorded recall is the lower one
        by_kind = ix["recall_at_10_by_queries"]
        assert set(by_kind) == {"users", "songs"} == set(ix["recall_queries_by_kind"])
        assert min(by_kind.values()) == ix["recall_at_10"] and all(r >= 0.95 for r in by_kind.values())
        assert all(min(t["recall_at_10_by_queries"].values()) == t["recall_at_10"] for t in tried)
        assert all(t["recall_at_10"] < 0.95 for t in tried if t["nprobe"] < nprobe)
        with Bundle.open(out) as b:
            assert faiss.extract_index_ivf(b._indexes[name].index).nprobe == nprobe
            _, found = b.search(name, users, 10)
        _, ref_pos = _brute_top(users, _npy(out, f"{prefix}_vectors"), 10)
        ref = _npy(out, f"{prefix}_rows")[ref_pos]
        recall = np.mean([len(np.intersect1d(f, r)) / 10 for f, r in zip(found, ref)])
        assert recall >= 0.9  # measured on every user here, on a sample at build time
        # a kind of query that reached the target with fewer probes, whose probed lists held a
        # default request's candidates for nearly every query, searches with those
        own = ix.get("search_params_by_queries", {})
        full = f"full_{min(candidate_count(IndexerConfig().default_k), ix['vectors'])}_by_queries"
        assert all(0.0 <= t[full][kind] <= 1.0 for t in tried for kind in ("users", "songs"))
        for kind in ("users", "songs"):
            reached = [t["nprobe"] for t in tried if t["recall_at_10_by_queries"][kind] >= 0.95
                       and t[full][kind] >= FULL_ANSWERS]
            if reached and min(reached) < nprobe:
                assert own[kind] == {"nprobe": min(reached)}
            else:
                assert kind not in own
        assert "users" not in own    # (users are the harder queries: they set the index's nprobe)
        songs = _npy(out, f"{prefix}_vectors")[:20]
        with Bundle.open(out) as b:
            got = b.search(name, songs, 10, kind="songs")
            index = b._indexes[name].index
            faiss.extract_index_ivf(index).nprobe = own.get("songs", {"nprobe": nprobe})["nprobe"]
            expect = b.search(name, songs, 10)     # the same search with the index's own setting changed
            faiss.extract_index_ivf(index).nprobe = nprobe
            default = b.search(name, songs, 10)
        # ... except where those few lists hold fewer than 10 songs: then the index's own probes
        short = (expect[1] < 0).any(axis=1)
        for e, d in zip(expect, default):
            e[short] = d[short]
        assert np.array_equal(got[1], expect[1]) and np.array_equal(got[0], expect[0])


def test_song_queries_search_with_the_fewer_probes_they_need():
    # clustered songs: a song's nearest songs share its list, a user's are spread over many
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(32, 16)) * 4
    vectors = (centers[rng.integers(0, 32, 6000)] + rng.normal(size=(6000, 16))).astype(np.float32)
    queries = {"users": rng.normal(size=(300, 16)).astype(np.float32),
               "songs": vectors[rng.choice(6000, 300, replace=False)]}
    index, entry = specs.build_index(vectors, "IVF24,Flat", queries, IndexerConfig())
    nprobe, own = entry["search_params"]["nprobe"], entry["search_params_by_queries"]
    full = f"full_{candidate_count(IndexerConfig().default_k)}_by_queries"
    reached = [t["nprobe"] for t in entry["recall_by_param"] if t["recall_at_10_by_queries"]["songs"] >= 0.95
               and t[full]["songs"] >= FULL_ANSWERS]
    assert own == {"songs": {"nprobe": min(reached)}} and min(reached) < nprobe
    # (the recall alone was reached with fewer lists than hold a default request's candidates)
    by_recall = [t["nprobe"] for t in entry["recall_by_param"] if t["recall_at_10_by_queries"]["songs"] >= 0.95]
    assert min(by_recall) <= min(reached)
    # the per-call parameters search as the index would with its own nprobe set to that value
    from pmrs.serving.bundle import _search_parameters

    q = specs.augment_queries(queries["songs"]) if entry["transform"] == "l2_augmented" else queries["songs"]
    got = index.search(q, 10, params=_search_parameters(index, own["songs"]))
    assert faiss.extract_index_ivf(index).nprobe == nprobe       # (the shared index is untouched)
    faiss.extract_index_ivf(index).nprobe = own["songs"]["nprobe"]
    expect = index.search(q, 10)
    assert np.array_equal(got[1], expect[1]) and np.array_equal(got[0], expect[0])
    faiss.extract_index_ivf(index).nprobe = nprobe
    # a list longer than the song queries' few lists hold is searched with the index's own probes
    from pmrs.serving.bundle import _VectorIndex

    ix = _VectorIndex("collaborative", entry, index, np.arange(6000, dtype=np.int32), vectors)
    top = 6000 // 24 * (own["songs"]["nprobe"] + 2)             # more than those lists hold
    short = index.search(q[:5], top, params=_search_parameters(index, own["songs"]))[1]
    long_songs, long_default = ix.search(queries["songs"][:5], top, "songs"), ix.search(queries["songs"][:5], top)
    assert np.array_equal(long_songs[1], long_default[1]) and np.array_equal(long_songs[0], long_default[0])
    assert (long_songs[1] >= 0).all() and (short < 0).any()    # (more lists, up to all, fill it)
    assert [x[1].tolist() for x in ix.search_each(queries["songs"][:5], top, "songs")] == \
        [r[None].tolist() for r in long_songs[1]]


def test_automatic_ivf_falls_back_to_exact_when_it_must_probe_most_lists(work):
    # exact_threshold 0: the automatic spec is IVF32,Flat even for 64 vectors
    out = build_bundle(work, IndexerConfig(exact_threshold=0, max_probe_fraction=0.01))
    for name in ("collaborative", "acoustic"):
        ix = _manifest(out)["sources"][name]["index"]
        assert ix["spec"] == "Flat" and ix["recall_at_10"] == 1.0 and ix["search_params"] == {}
        assert ix["fallback_from"]["spec"].startswith("IVF") and "no faster" in ix["fallback_from"]["reason"]
    out = build_bundle(work, IndexerConfig(exact_threshold=0, max_probe_fraction=1.0))
    ix = _manifest(out)["sources"]["collaborative"]["index"]
    assert ix["spec"] == "IVF32,Flat" and "fallback_from" not in ix and ix["recall_at_10"] >= 0.95
    # an explicit spec is never replaced
    out = build_bundle(work, IndexerConfig(collaborative_spec="IVF32,Flat", max_probe_fraction=0.01))
    assert _manifest(out)["sources"]["collaborative"]["index"]["spec"] == "IVF32,Flat"


def test_unreachable_recall_is_recorded_with_a_warning(work, caplog):
    # one probe of 8 lists cannot reach recall 1.0 when the parameter may not grow: PQ codes are
    # lossy, so even the exhaustive nprobe falls short of a perfect recall
    # PQ needs the dimension divisible by its sub-quantizers: k + 1 after the l2 reduction is odd
    with pytest.raises(ValueError, match="l2_reduction = false"):
        build_bundle(work, IndexerConfig(collaborative_spec="IVF8,PQ2x4", target_recall=1.0))
    out = build_bundle(work, IndexerConfig(collaborative_spec="IVF8,PQ2x4", target_recall=1.0,
                                           l2_reduction=False))
    ix = _manifest(out)["sources"]["collaborative"]["index"]
    assert ix["search_params"] == {"nprobe": 8} and ix["recall_at_10"] < 1.0
    assert "recorded as measured" in caplog.text
    with Bundle.open(out) as b:  # lossy codes: the reader re-scores with the exact vectors
        users = _npy(out, "user_factors")[:20]
        scores, rows = b.search("collaborative", users, 10)
        vec = _npy(out, "collaborative_vectors")[np.searchsorted(_npy(out, "collaborative_rows"), rows)]
        np.testing.assert_allclose(scores, np.einsum("nkd,nd->nk", vec, users), rtol=1e-5, atol=1e-6)
        assert (np.diff(scores, axis=1) <= 0).all()


def test_hnsw_uses_the_l2_reduction_and_ranks_by_inner_product(work):
    out = build_bundle(work, IndexerConfig(collaborative_spec="HNSW8", acoustic_spec="HNSW8"))
    m = _manifest(out)
    users = _npy(out, "user_factors")
    for name, prefix in (("collaborative", "collaborative"), ("acoustic", "acoustic")):
        ix = m["sources"][name]["index"]
        assert ix["transform"] == "l2_augmented" and ix["faiss_metric"] == "L2"
        assert ix["metric"] == "inner_product" and "efSearch" in ix["search_params"]
        assert ix["dimension"] == 8 and ix["index_dimension"] == 9 and ix["recall_at_10"] >= 0.95
        index = faiss.read_index(str(out / ix["file"]))
        assert index.d == 9 and index.metric_type == faiss.METRIC_L2
        vectors, rows = _npy(out, f"{prefix}_vectors"), _npy(out, f"{prefix}_rows")
        with Bundle.open(out) as b:
            scores, found = b.search(name, users, 10)
        ref_scores, ref_pos = _brute_top(users, vectors, 10)
        # scores are exact inner products of the returned songs, best first
        vec = vectors[np.searchsorted(rows, found)]
        np.testing.assert_allclose(scores, np.einsum("nkd,nd->nk", vec, users), rtol=1e-5, atol=1e-6)
        assert (np.diff(scores, axis=1) <= 0).all()
        recall = np.mean([len(np.intersect1d(f, r)) / 10 for f, r in zip(found, rows[ref_pos])])
        assert recall >= 0.95
        # the augmentation makes the L2 ranking the inner-product ranking: the top hit agrees
        assert np.mean(found[:, 0] == rows[ref_pos[:, 0]]) >= 0.95


def test_current_switches_and_keep_prunes_oldest(work):
    cfg = IndexerConfig(keep=2)
    first = build_bundle(work, cfg)
    second = build_bundle(work, cfg)
    assert current_bundle(work) == second
    third = build_bundle(work, cfg)
    assert current_bundle(work) == third
    assert list_bundles(work) == [second, third] and not first.exists()
    # never the bundle CURRENT names, even when it is the oldest
    (work / "bundles" / "CURRENT").write_text(second.name + "\n")
    assert prune_bundles(work, keep=1) == []
    assert list_bundles(work) == [second, third]
    assert not list((work / "bundles").glob(".CURRENT.*"))


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_build_leaves_current_and_old_bundle_untouched(work, monkeypatch, exc):
    old = build_bundle(work)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    real = specs.build_index
    calls = []

    def fail_second(*args, **kwargs):  # the acoustic index, after the collaborative one is written
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(specs, "build_index", fail_second)
    with pytest.raises(type(exc)):
        build_bundle(work)
    assert len(calls) == 2
    assert current_bundle(work) == old and list_bundles(work) == [old]
    assert not _partials(work)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    Bundle.verify_checksums(old)


def test_failure_while_switching_current_removes_the_new_bundle(work, monkeypatch):
    old = build_bundle(work)

    def broken(bundles, version):
        raise KeyboardInterrupt

    monkeypatch.setattr(ib.C, "switch_current", broken)
    with pytest.raises(KeyboardInterrupt):
        build_bundle(work)
    assert current_bundle(work) == old and list_bundles(work) == [old] and not _partials(work)


def test_partial_dirs_of_killed_builds_are_cleaned(work):
    stale = work / "bundles" / ".20260101-000000-dead.x.partial"
    stale.mkdir(parents=True)
    (stale / "user_ids.npy").write_bytes(b"half")
    build_bundle(work)
    assert not stale.exists()


def test_no_cnn_run_gives_a_collaborative_only_bundle(work):
    shutil.rmtree(work / "models" / "cnn")
    out = build_bundle(work, IndexerConfig(metadata=False))
    m = _manifest(out)
    assert list(m["sources"]) == ["collaborative"] and m["source_runs"]["cnn"] is None
    assert m["counts"]["songs"] == 64 and m["counts"]["songs_with_audio"] == 0
    assert m["dimensions"]["embedding"] is None and m["genres"] == []
    assert not any(p.name.startswith(("acoustic", "genre")) for p in out.iterdir())
    with Bundle.open(out, verify=True) as b:
        assert b.source_names == ["collaborative"] and not b.has_source("acoustic")
        assert b.source_size("acoustic") == 0 and b.song_vector("acoustic", 0) is None
        assert b.embedding([0, 1]).shape == (2, 0) and b.genre_probs(0) is None
        with pytest.raises(KeyError, match="acoustic"):
            b.search("acoustic", b.user_vector(0), 5)
        assert b.search("collaborative", b.user_vector(0), 5)[1].shape == (1, 5)
    # the bundle's default share of the acoustic source it lacks is moot: it serves
    from pmrs import InvalidArgument, Recommender
    from pmrs.v1 import recommender_pb2 as pb
    from pmrs_server.servicer import BundleHolder, RecommenderServicer

    with Recommender.open(work) as rec:
        user = rec.bundle.user_ids[0].decode()
        listed = rec.recommend(user)
        assert listed.precomputed and len(listed.songs) == 10
        assert {s.sources for s in listed.songs} == {("collaborative",)}
        with pytest.raises(InvalidArgument, match="unknown source"):
            rec.recommend(user, shares={"acoustic": 0.5})

        class Ctx:
            def time_remaining(self):
                return None

        servicer = RecommenderServicer(BundleHolder(rec))   # (the older field is ignored here)
        got = servicer.Recommend(pb.RecommendRequest(user_id=user, acoustic_share=0.5), Ctx())
        assert [s.song_id for s in got.songs] == listed.song_ids


def test_cnn_run_without_predictions_is_refused(work):
    shutil.rmtree(work / "models" / "cnn" / "c1" / "predictions")
    with pytest.raises(FileNotFoundError, match="pmrs predict"):
        build_bundle(work)
    assert not (work / "bundles" / "CURRENT").exists() and not _partials(work)


def test_interactions_of_other_users_are_refused(work):
    ids = np.load(work / "interactions" / "user_ids.npy")
    ids[0] = b"SOMEONE-ELSE"[: ids.dtype.itemsize]
    np.save(work / "interactions" / "user_ids.npy", np.sort(ids))
    with pytest.raises(ValueError, match="train-wmf"):
        build_bundle(work)


def test_cnn_trained_on_another_wmf_run_is_refused(work):
    shutil.copytree(work / "models" / "wmf" / "w1", work / "models" / "wmf" / "w2")
    with pytest.raises(ValueError, match="--wmf-run w1"):
        build_bundle(work)  # latest WMF run w2, but the CNN learned w1's factors
    assert build_bundle(work, wmf_run="w1").is_dir()


def test_cli_build_with_toml_and_flags(work, tmp_path, capsys):
    cfg = tmp_path / "i.toml"
    cfg.write_text('[indexer]\ncollaborative_spec = "IVF4,Flat"\nkeep = 1\n')
    assert main(["build", "--workdir", str(work), "--config", str(cfg), "--acoustic-spec", "HNSW8", "-q"]) == 0
    text = capsys.readouterr().out
    out = current_bundle(work)
    assert out.name in text and "IVF4,Flat" in text and "nprobe=" in text and "l2_augmented" in text
    share = IndexerConfig().default_acoustic_share
    assert f"  acoustic: default share {share:g}; {ACOUSTIC_SHARE_NOT_VALIDATED}\n" in text
    # the tiny world's CNN learned from too little, both parts (tests/test_acoustic_pipeline.py)
    judged = json.loads((work / "models" / "cnn" / "c1" / "history.json").read_text())["undertrained"]
    assert judged["factors"]["undertrained"] and judged["genre_head"]["undertrained"]
    assert f"  UNDERTRAINED acoustic factor prediction: {judged['factors']['reason']}\n" in text
    assert f"  UNDERTRAINED acoustic genre head: {judged['genre_head']['reason']}\n" in text
    m = _manifest(out)
    assert m["indexer_config"]["keep"] == 1 and m["sources"]["acoustic"]["index"]["spec"] == "HNSW8"
    assert "default lists for every user (Recommend): k=10" in text
    assert main(["build", "--workdir", str(work), "--config", str(cfg), "-q", "--no-default-lists"]) == 0
    assert len(list_bundles(work)) == 1
    assert "default_lists" not in _manifest(current_bundle(work))
    assert "default lists" not in capsys.readouterr().out
    cfg.write_text("[indexer]\ndefault_acoustic_share = 0.3\nkeep = 1\n")   # a share given is no fixed default
    assert main(["build", "--workdir", str(work), "--config", str(cfg), "-q", "--no-default-lists"]) == 0
    ac = _manifest(current_bundle(work))["sources"]["acoustic"]["settings"]
    assert ac["share_from"] == "given" and "share_why" not in ac
    assert "acoustic: default share" not in capsys.readouterr().out
    cfg.write_text("[indexer]\nnprobe = 3\n")
    assert main(["build", "--workdir", str(work), "--config", str(cfg), "-q"]) == 2
    assert "unknown setting" in capsys.readouterr().err


def test_current_bundle_without_a_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="indexer build"):
        current_bundle(tmp_path)


def test_recall_counts_tied_vectors_as_hits():
    # metadata vectors of songs with equal metadata are equal: exact search picks among them
    # arbitrarily, so an index returning other tied vectors has found the right answer
    from pmrs.indexing.specs import exact_top, recall_at, recall_with_ties

    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((30, 8)).astype(np.float32)
    vectors = np.repeat(distinct, 20, axis=0)        # each vector 20 times
    queries = distinct[:5] + 0.01 * rng.standard_normal((5, 8)).astype(np.float32)
    truth = exact_top(queries, vectors, 10)
    other_ties = np.array([[r - r % 20 + (r % 20 + 10) % 20 for r in row] for row in truth])  # same groups
    assert recall_at(other_ties, truth) < 0.5 and recall_with_ties(other_ties, truth, queries, vectors) == 1.0
    wrong = (truth + 200) % len(vectors)             # other vectors, lower scores
    assert recall_with_ties(wrong, truth, queries, vectors) == recall_at(wrong, truth) == 0.0
    half = np.where(np.arange(10) < 5, truth, -1)    # missing entries are misses
    assert recall_with_ties(half, truth, queries, vectors) == 0.5
