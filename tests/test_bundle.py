"""The bundle reader: ids, vectors, played songs, search, fold-in, catalog, embeddings, checks."""

import json
import shutil
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from pmrs.indexing import IndexerConfig, build_bundle
from pmrs.acoustic.runs import load_predictions
from pmrs.catalog import Catalog
from pmrs.interactions import Interactions
from pmrs.serving.bundle import Bundle
from pmrs.collaborative.wmf import WMFConfig, fold_in, load_run


@pytest.fixture(scope="module")
def built(serving_workdir, tmp_path_factory):
    work = tmp_path_factory.mktemp("bundle") / "work"
    shutil.copytree(serving_workdir, work)
    out = build_bundle(work)
    b = Bundle.open(out, verify=True)
    yield work, out, b
    b.close()


def _memory_mapped(a) -> bool:
    """Whether ``a`` is a view of a file mapping (not a copy read into memory)."""
    import mmap
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def test_open_reads_the_manifest(built, tmp_path):
    _, out, b = built
    assert b.version == out.name == b.manifest["version"]
    assert (b.n_users, b.n_songs, b.factors, b.embedding_dim) == (200, 80, 8, 16)
    assert b.source_names == ["collaborative", "acoustic", "metadata"]   # (metadata: every catalog song)
    assert b.source_size("collaborative") == 64 and b.source_size("acoustic") == b.source_size("metadata") == 80
    assert len(b.genres) == 4
    assert b.in_memory and not _memory_mapped(b.user_factors)       # a small bundle is copied
    copy = tmp_path / out.name   # (one process opens a catalog's LMDB once)
    shutil.copytree(out, copy)
    with Bundle.open(copy, in_memory=False) as mapped:
        assert _memory_mapped(mapped.user_factors) and _memory_mapped(mapped.played_indices)
        assert np.array_equal(mapped.user_factors, b.user_factors)


def test_ids_map_to_rows_and_unknown_ids_to_none(built):
    work, _, b = built
    inter = Interactions.load(work / "interactions")
    uid = inter.user_ids[17].decode()
    assert b.user_row(uid) == 17 and b.user_row(uid.encode()) == 17
    assert b.user_row("nobody") is None and b.user_row("") is None
    sid = b.song_ids[5].decode()
    assert b.song_row(sid) == 5 and b.song_id(5) == sid
    assert b.song_row("SONOTASONG00000000") is None
    assert b.song_row("SO" + "X" * 200) is None                       # longer than any id
    rows = b.song_rows([sid, "missing", b.song_ids[0], b.song_ids[-1].decode()])
    assert rows.tolist() == [5, -1, 0, 79] and rows.dtype == np.int64
    assert b.song_rows([]).shape == (0,)


def test_vectors_and_played_songs_come_from_the_runs(built):
    work, _, b = built
    wmf, _, wmf_songs = load_run(work / "models" / "wmf" / "w1")
    pred = load_predictions(work / "models" / "cnn" / "c1" / "predictions")
    inter = Interactions.load(work / "interactions")
    np.testing.assert_array_equal(b.user_vector(3), wmf.user_factors[3])
    played = b.played(3)
    cols = inter.matrix.indices[inter.matrix.indptr[3]:inter.matrix.indptr[3 + 1]]
    assert played.tolist() == b.song_rows(inter.song_ids[cols]).tolist()
    assert (np.diff(played) > 0).all()
    warm = set(wmf_songs.tolist())
    for row in range(b.n_songs):
        sid = b.song_ids[row]
        v = b.song_vector("collaborative", row)
        if sid in warm:
            np.testing.assert_array_equal(v, wmf.song_factors[np.searchsorted(wmf_songs, sid)])
        else:
            assert v is None                                           # a cold song: no plays
        a = b.song_vector("acoustic", row)
        np.testing.assert_array_equal(a, pred["factors"][np.searchsorted(pred["song_ids"], sid)])
        probs = b.genre_probs(row)
        assert probs.shape == (4,) and abs(probs.sum() - 1) < 1e-4
    assert sum(b.song_vector("collaborative", r) is None for r in range(b.n_songs)) == 16
    # song rows out of range have no vector (never wrapped into range by the int32 search)
    have, vectors = b.song_vectors("collaborative", [-1, b.n_songs, 2**32 + 3, 2**40, 3])
    assert have.tolist() == [False, False, False, False, b.song_vector("collaborative", 3) is not None]
    assert len(vectors) == have.sum()


def test_search_padding_shapes_and_one_dimensional_queries(built):
    _, _, b = built
    q = b.user_vector(0)
    scores, rows = b.search("collaborative", q, 100)                  # 64 vectors in the index
    assert scores.shape == rows.shape == (1, 100) and scores.dtype == np.float32
    assert (rows[0, :64] >= 0).all() and (rows[0, 64:] == -1).all()
    assert np.isneginf(scores[0, 64:]).all() and (np.diff(scores[0, :64]) <= 0).all()
    assert sorted(rows[0, :64].tolist()) == sorted(r for r in range(80) if b.song_vector("collaborative", r) is not None)
    assert b.search("acoustic", np.stack([q, q]), 0)[1].shape == (2, 0)
    with pytest.raises(ValueError):
        b.search("collaborative", np.zeros((1, 5), np.float32), 3)
    with pytest.raises(KeyError):
        b.search("lyrics", q, 3)


def test_concurrent_searches_agree_with_serial(built):
    _, _, b = built
    queries = np.asarray(b.user_factors[:50])
    expected = {name: b.search(name, queries, 10) for name in ("collaborative", "acoustic")}
    errors, results = [], []

    def worker(i):
        try:
            for _ in range(20):
                name = ("collaborative", "acoustic")[i % 2]
                s, r = b.search(name, queries, 10)
                results.append((name, s, r))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 120
    for name, s, r in results:
        np.testing.assert_array_equal(r, expected[name][1])
        np.testing.assert_array_equal(s, expected[name][0])


def test_fold_in_equals_the_wmf_fold_in(built):
    work, _, b = built
    wmf, _, _ = load_run(work / "models" / "wmf" / "w1")
    cfg = WMFConfig(**{k: b.manifest["wmf_config"][k] for k in ("factors", "alpha", "eps", "regularization")})
    cold = next(r for r in range(b.n_songs) if b.song_vector("collaborative", r) is None)
    warm = [r for r in range(b.n_songs) if b.song_vector("collaborative", r) is not None][:5]
    seeds = warm + [warm[0]]                                          # a repeat: ignored
    collab_rows = np.load(b.path / "collaborative_rows.npy")
    counts = sp.csr_matrix((np.ones(len(warm)), (np.zeros(len(warm), int), np.searchsorted(collab_rows, warm))),
                           shape=(1, len(collab_rows)))
    expected = fold_in(counts, wmf.song_factors, cfg)[0]
    got = b.fold_in(seeds)
    assert got.shape == (8,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    one = sp.csr_matrix(([1.0], ([0], [np.searchsorted(collab_rows, warm[0])])), shape=(1, len(collab_rows)))
    np.testing.assert_allclose(b.fold_in(np.asarray(warm[:1])), fold_in(one, wmf.song_factors, cfg)[0],
                               rtol=1e-4, atol=1e-6)
    assert not b.fold_in([]).any()
    # A cold seed enters with its CNN-predicted factors: the closed form over Y plus that column.
    lp = b.song_vector("acoustic", cold).astype(np.float64)
    Y = wmf.song_factors.astype(np.float64)
    c = 1.0 + cfg.alpha * np.log1p(1.0 / cfg.eps)
    A = Y.T @ Y + cfg.regularization * np.eye(Y.shape[1]) + c * np.outer(lp, lp)
    np.testing.assert_allclose(b.fold_in([cold]), np.linalg.solve(A, c * lp), rtol=1e-4, atol=1e-6)


def test_songs_return_catalog_fields(built):
    work, _, b = built
    rows = [0, 41, 79]
    songs = b.songs(rows)
    with Catalog(work / "catalog.lmdb") as cat:
        for row, s in zip(rows, songs):
            meta = cat.get(b.song_id(row))
            assert s["song_id"] == b.song_id(row)
            for key in ("title", "artist", "release", "year", "genre"):
                assert s[key] == meta[key]
    assert b.songs([]) == []
    with pytest.raises(IndexError):
        b.songs([-1])


def test_song_cache_is_bounded_and_hands_out_copies(built, monkeypatch):
    import pmrs.serving.bundle as bundle_mod

    _, _, b = built
    first = b.songs(range(b.n_songs))
    first[0]["title"] = "changed by a caller"
    again = b.songs([0, 0, 5])                       # repeats, and from the cache
    assert again[0]["title"] != "changed by a caller" and again[0] == again[1]
    assert again[2] == first[5]
    monkeypatch.setattr(bundle_mod, "SONG_CACHE_SIZE", 10)
    b._song_cache.clear()
    for start in range(0, b.n_songs, 7):
        got = b.songs(range(start, min(start + 7, b.n_songs)))
        assert [s["song_id"] for s in got] == [b.song_id(r) for r in range(start, min(start + 7, b.n_songs))]
        assert len(b._song_cache) <= 10


def test_embeddings_zero_for_songs_without_audio(serving_workdir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(serving_workdir, work)
    pred = load_predictions(work / "models" / "cnn" / "c1" / "predictions")
    keep = np.arange(0, 80, 2)                                        # audio for half the songs
    override = {"song_ids": pred["song_ids"][keep], "factors": pred["factors"][keep],
                "source": "test: every other song"}                   # no embeddings: from factors
    out = build_bundle(work, IndexerConfig(), acoustic_override=override)
    with Bundle.open(out) as b:
        assert b.manifest["source_runs"]["cnn"] == "test: every other song"
        assert b.source_size("acoustic") == 40 and b.manifest["counts"]["songs_with_audio"] == 40
        with_audio = b.song_rows(pred["song_ids"][keep])
        without = np.setdiff1d(np.arange(b.n_songs), with_audio)
        emb = b.embedding(np.concatenate([with_audio[:3], without[:3]]))
        assert emb.shape == (6, 8)
        assert np.allclose(np.linalg.norm(emb[:3], axis=1), 1) and not emb[3:].any()
        assert b.song_vector("acoustic", int(without[0])) is None and b.genre_probs(int(with_audio[0])) is None
        _, rows = b.search("acoustic", b.user_vector(0), 40)
        assert set(rows[0].tolist()) == set(with_audio.tolist())


def test_open_refuses_other_formats_and_corrupt_files(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / out.name
    shutil.copytree(out, copy)
    Bundle.open(copy, verify=True).close()
    with open(copy / "collaborative_vectors.npy", "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\x80\x7f")
    Bundle.open(copy, validate=False).close()                          # not checked: opens
    with pytest.raises(ValueError, match="damaged: collaborative vectors are not finite"):
        Bundle.open(copy)
    with pytest.raises(ValueError, match="collaborative_vectors.npy"):
        Bundle.open(copy, verify=True)
    m = json.loads((copy / "manifest.json").read_text())
    m["format_version"] = 4
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format version 4"):
        Bundle.open(copy)
    with pytest.raises(FileNotFoundError, match="indexer build"):
        Bundle.open(tmp_path / "nothing")


def _judged(factors: bool, genre_head: bool) -> dict:
    part = {True: {"undertrained": True, "reason": "a test reason"}, False: {"undertrained": False, "reason": ""}}
    return {"sources": {"acoustic": {"settings": {"undertrained": {"factors": part[factors],
                                                                   "genre_head": part[genre_head]}}}}}


@pytest.mark.parametrize("factors,genre_head", [(True, False), (False, True), (True, True), (False, False)])
def test_each_undertrained_part_of_the_acoustic_model_has_its_own_warning(factors, genre_head):
    from pmrs.serving.bundle import acoustic_warning, genre_warning

    m = _judged(factors, genre_head)
    assert acoustic_warning(m) == ("the acoustic model's factor prediction learned from too little: a test reason"
                                   if factors else "")
    assert genre_warning(m) == ("the genre head learned from too little: a test reason" if genre_head else "")
    assert acoustic_warning({"sources": {"acoustic": {"settings": {}}}}) == ""   # (an older bundle: no verdict)
