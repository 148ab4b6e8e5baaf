import numpy as np
import pytest
import scipy.sparse as sp

from pmrs.collaborative.neighbours import NeighboursConfig, build_neighbours, load_run, save_run


def random_counts(n_users=150, n_songs=60, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_songs, density=density, random_state=seed, format="csr")
    m.data = rng.integers(1, 30, m.nnz).astype(np.float32)
    return m


def test_asymmetric_cosine_with_locality_matches_the_formula():
    counts = random_counts()
    cfg = NeighboursConfig(alpha=0.2, locality=2.0, neighbours=1000, block_songs=7)  # several blocks
    sim = build_neighbours(counts, cfg, show_progress=False).similarity.toarray()
    b = (counts.toarray() > 0).astype(np.float64)
    co = b.T @ b
    n = b.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (co / (n[None, :] ** 0.2 * n[:, None] ** 0.8)) ** 2.0  # row i: played, column j: candidate
    expected = np.nan_to_num(expected)
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(sim, expected, rtol=1e-5, atol=1e-7)


def test_top_k_keeps_the_largest_similarities_of_each_song():
    counts = random_counts(seed=1)
    full = build_neighbours(counts, NeighboursConfig(neighbours=1000), show_progress=False).similarity.toarray()
    top = build_neighbours(counts, NeighboursConfig(neighbours=5), show_progress=False).similarity
    assert np.diff(top.indptr).max() == 5
    for i in range(counts.shape[1]):
        row = top[i]
        kth = np.sort(full[i])[::-1][min(4, np.count_nonzero(full[i]) - 1)] if full[i].any() else 0
        assert np.all(row.data >= kth - 1e-7) and np.allclose(row.data, full[i, row.indices])


def test_top_k_cut_keeps_the_lowest_columns_among_ties():
    from pmrs.collaborative.neighbours import _top_per_row

    rng = np.random.default_rng(5)
    dense = rng.integers(0, 4, size=(40, 90)).astype(np.float32)  # many ties, some zeros
    block = sp.csr_matrix(dense)
    perm = rng.permutation(block.nnz)  # columns unsorted within rows, as a sparse product leaves them
    rows = np.repeat(np.arange(40), np.diff(block.indptr))
    order = np.lexsort((perm, rows))
    shuffled = sp.csr_matrix((block.data[order], block.indices[order], block.indptr), shape=block.shape)
    for k in (1, 7, 30, 90):
        top = _top_per_row(shuffled, k)
        for r in range(40):
            nz = np.flatnonzero(dense[r])
            expected = nz[np.lexsort((nz, -dense[r, nz]))][:k]  # by value, then lower column
            assert np.array_equal(top[r].indices, np.sort(expected))
            assert np.array_equal(top[r].data, dense[r, np.sort(expected)])


def test_threads_give_the_same_model_as_one_thread():
    counts = random_counts(n_users=300, n_songs=200, seed=6)
    one = build_neighbours(counts, NeighboursConfig(neighbours=12, block_songs=16, threads=1),
                           show_progress=False).similarity
    three = build_neighbours(counts, NeighboursConfig(neighbours=12, block_songs=16, threads=3),
                             show_progress=False)
    assert three.log["threads"] == 3
    assert (one != three.similarity).nnz == 0 and np.array_equal(one.indices, three.similarity.indices)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_bm25_similarities_equal_implicits_bm25_recommender():
    from implicit.nearest_neighbours import BM25Recommender

    counts = random_counts(seed=2)
    ref = BM25Recommender(K=1000)
    ref.fit(counts, show_progress=False)
    ours = build_neighbours(counts, NeighboursConfig(similarity="bm25", neighbours=1000),
                            show_progress=False).similarity.toarray()
    theirs = ref.similarity.toarray()
    np.fill_diagonal(theirs, 0.0)
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_recommend_sums_neighbour_rows_and_skips_played_songs():
    counts = random_counts(seed=3)
    model = build_neighbours(counts, NeighboursConfig(neighbours=10), show_progress=False)
    played = counts[4].indices
    songs, scores = model.recommend(played, k=8, exclude=np.array([0]))
    expected = np.asarray(model.similarity[played].sum(axis=0)).ravel()
    assert not np.isin(songs, played).any() and 0 not in songs
    assert np.allclose(scores, expected[songs]) and np.all(np.diff(scores) <= 0)
    dense = model.scores(counts[[4]])[0]
    assert np.allclose(dense, expected)
    near, s = model.similar_songs(7, k=3)
    row = model.similarity[7].toarray().ravel()
    assert 7 not in near and np.allclose(s, np.sort(row)[::-1][:3])


def test_run_round_trip_never_unpickles(tmp_path):
    counts = random_counts(seed=4)
    model = build_neighbours(counts, NeighboursConfig(similarity="bm25", neighbours=7), show_progress=False)
    ids = np.array([b"SO%016d" % i for i in range(counts.shape[1])])
    run = save_run(model, tmp_path / "n1", ids)
    for name in ("indptr", "indices", "data"):
        np.load(run / f"{name}.npy", allow_pickle=False)
    loaded, song_ids = load_run(run)
    assert (loaded.similarity != model.similarity).nnz == 0 and np.array_equal(song_ids, ids)
    assert loaded.config == model.config
    with pytest.raises(FileExistsError):
        save_run(model, run, ids)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        NeighboursConfig(similarity="jaccard")
    with pytest.raises(ValueError):
        NeighboursConfig(alpha=1.5)
    with pytest.raises(ValueError):
        NeighboursConfig(threads=-1)


def test_ease_similarity_keeps_the_largest_positive_ease_weights_of_each_song():
    from pmrs.collaborative.ease import fit_ease

    counts = sp.random(150, 40, density=0.2, random_state=3, format="csr", dtype=np.float32)
    weights = np.maximum(fit_ease(counts, 20.0), 0.0)
    k = 5
    got = build_neighbours(counts, NeighboursConfig(similarity="ease", ease_lambda=20.0, neighbours=k,
                                                    block_songs=16)).similarity.toarray()
    for i in range(40):
        row = weights[i]
        want = np.sort(row[row > 0])[::-1][:k]
        assert np.allclose(np.sort(got[i][got[i] > 0])[::-1], want, atol=1e-6), i
        assert got[i, i] == 0.0
    with pytest.raises(ValueError):
        NeighboursConfig(similarity="ease", ease_lambda=0.0)
