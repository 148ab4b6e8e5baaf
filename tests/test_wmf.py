import numpy as np
import pytest
import scipy.sparse as sp

from pmrs.collaborative.wmf import WMFConfig, confidence, fold_in, load_run, save_run, train_wmf


def random_counts(n_users=120, n_songs=80, density=0.08, seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_songs, density=density, random_state=seed, format="csr")
    m.data = rng.integers(1, 40, m.nnz).astype(np.int32)
    return m


def closed_form(C: sp.csr_matrix, fixed: np.ndarray, reg: float) -> np.ndarray:
    """The paper's solve for every row of C, in float64: (F^T C_u F + lambda I)^-1 F^T C_u p(u)."""
    F = fixed.astype(np.float64)
    k = F.shape[1]
    out = np.empty((C.shape[0], k))
    for u in range(C.shape[0]):
        c_u = np.ones(C.shape[1])
        p_u = np.zeros(C.shape[1])
        row = C.getrow(u)
        c_u[row.indices] = row.data
        p_u[row.indices] = 1.0
        out[u] = np.linalg.solve(F.T @ (c_u[:, None] * F) + reg * np.eye(k), F.T @ (c_u * p_u))
    return out


def test_confidence_is_log_scaled():
    m = sp.csr_matrix(np.array([[0, 1, 10], [3, 0, 0]], dtype=np.int32))
    c = confidence(m, alpha=2.0, eps=0.5)
    expected = 1 + 2.0 * np.log(1 + np.array([1, 10, 3]) / 0.5)
    assert np.allclose(c.data, expected, rtol=1e-6)
    assert c.dtype == np.float32 and c.nnz == 3  # zeros stay unstored: c = 1, p = 0 there


def test_user_half_step_matches_the_paper_closed_form():
    counts = random_counts()
    cfg = WMFConfig(factors=6, alpha=3.0, eps=0.7, regularization=0.8, iterations=2, use_cg=False)
    model = train_wmf(counts, cfg, show_progress=False)
    C = confidence(counts, cfg.alpha, cfg.eps)
    # One user half-step against the fixed song factors, with implicit's exact solver.
    X = fold_in(counts, model.song_factors, cfg)
    assert np.allclose(X, closed_form(C, model.song_factors, cfg.regularization), atol=2e-5)
    # The last half-step of training solved the songs against the final user factors.
    Y = closed_form(C.T.tocsr(), model.user_factors, cfg.regularization)
    assert np.allclose(model.song_factors, Y, atol=2e-4)


def test_training_is_deterministic_and_learns_structure():
    # Two blocks of users and songs; a user's held-back block songs should score above the others.
    rng = np.random.default_rng(1)
    blocks = np.zeros((60, 40), dtype=np.int32)
    for u in range(60):
        own = np.arange(20) if u < 30 else np.arange(20, 40)
        blocks[u, rng.choice(own, 8, replace=False)] = rng.integers(1, 10, 8)
    counts = sp.csr_matrix(blocks)
    cfg = WMFConfig(factors=4, iterations=10, regularization=0.1, seed=5)
    a = train_wmf(counts, cfg, show_progress=False)
    b = train_wmf(counts, cfg, show_progress=False)
    assert np.array_equal(a.user_factors, b.user_factors)
    scores = a.scores(np.arange(60))
    own_mask = np.zeros((60, 40), bool)
    own_mask[:30, :20] = own_mask[30:, 20:] = True
    unplayed = blocks == 0
    assert scores[own_mask & unplayed].mean() > scores[~own_mask & unplayed].mean() + 0.2
    assert len(a.log) == cfg.iterations and all(r["seconds"] >= 0 for r in a.log)


def test_run_round_trip(tmp_path):
    counts = random_counts()
    cfg = WMFConfig(factors=5, iterations=2)
    model = train_wmf(counts, cfg, show_progress=False)
    users = np.array([b"u%03d" % i for i in range(counts.shape[0])])
    songs = np.array([b"s%03d" % i for i in range(counts.shape[1])])
    run = save_run(model, tmp_path / "run1", users, songs)
    loaded, u, s = load_run(run)
    assert np.array_equal(loaded.song_factors, model.song_factors)
    assert loaded.config == cfg and np.array_equal(u, users) and np.array_equal(s, songs)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp left behind
    with pytest.raises(FileExistsError):
        save_run(model, run, users, songs)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        WMFConfig(eps=0)
    with pytest.raises(ValueError):
        WMFConfig(factors=0)


def test_a_plays_confidence_decays_with_its_age():
    import numpy as np
    import scipy.sparse as sp

    from pmrs.collaborative.wmf import decayed, play_ages

    m = sp.csr_matrix(np.array([[4, 0, 2], [0, 8, 0]], np.int32))
    day = 86400
    last = np.array([1000 * day, 900 * day, 0, ])   # per stored pair: newest, 100 days older, unknown
    ages = play_ages(m, last)
    assert np.allclose(ages.data, [1.0, 101.0, -1.0])
    d = decayed(m, ages, half_life_days=100.0)
    assert np.allclose(d.toarray(), [[4.0, 0, 1.0], [0, 8.0, 0]])   # half a weight per half-life; unknown kept
    assert decayed(m, ages, 0.0) is m and decayed(m, None, 100.0) is m
    assert play_ages(m, np.zeros(3, np.int64)) is None
