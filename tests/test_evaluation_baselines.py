import numpy as np
import pytest
import scipy.sparse as sp

from pmrs.evaluation.baselines import REFERENCE_MODELS, fit_reference
from pmrs.evaluation.metrics import top_k


def counts(seed=0):
    rng = np.random.default_rng(seed)
    m = sp.random(120, 70, density=0.12, random_state=seed, format="csr", dtype=np.float32)
    m.data = rng.integers(1, 20, m.nnz).astype(np.float32)
    return m


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
@pytest.mark.parametrize("name", [n for n in REFERENCE_MODELS if n not in ("popularity", "ease")])  # EASE: test_protocols
def test_scores_rank_as_the_models_own_recommend(name):
    train = counts()
    model, scores_fn = fit_reference(name, train, seed=1)
    users = np.arange(0, 120, 7)
    ours = top_k(scores_fn, users, train, k=10)
    ids, their = model.recommend(users, train[users], N=10, filter_already_liked_items=True)
    dense = scores_fn(users)
    for r, u in enumerate(users):
        # Same songs in the same order, except among exactly tied scores.
        assert np.allclose(np.sort(dense[r, ours[r]])[::-1], np.sort(their[r])[::-1], rtol=1e-4, atol=1e-5), name
        assert not np.isin(ours[r], train[u].indices).any()


def test_popularity_counts_users_per_song():
    train = counts(1)
    _, fn = fit_reference("popularity", train)
    assert np.array_equal(fn(np.array([0, 3]))[1], np.diff(train.tocsc().indptr).astype(np.float32))
    with pytest.raises(ValueError):
        fit_reference("svd", train)
