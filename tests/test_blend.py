"""The batched blend (``pmrs.blend.Interleaver``, which the share search scores all validation
users with) against the served one-user pick, on random lists built to hit every case: songs in
several lists, tied scores, lists shorter than their quota or empty, users with fewer lists,
quotas that do not add up to ``k``."""

import numpy as np
import pytest

from pmrs.blend import Interleaver, interleave, pick, share_quotas


def _random_users(rng, n, k, n_lists, catalog):
    users = []
    for _ in range(n):
        lists = []
        for _ in range(int(rng.integers(1, n_lists + 1))):
            short = rng.random() < 0.25
            m = int(rng.integers(0, min(catalog, 3 * k) + 1)) if short else min(catalog, int(rng.integers(k, 3 * k + 1)))
            rows = rng.choice(catalog, m, replace=False)
            scores = rng.integers(0, 4, m) if rng.random() < 0.5 else rng.random(m)   # ties, or none
            lists.append((rows, np.sort(scores.astype(np.float32))[::-1].copy()))
        users.append(lists)
    return users


@pytest.mark.parametrize("seed", range(4))
def test_interleaver_picks_what_pick_picks_for_every_user(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(60):
        k, n_lists = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        users = _random_users(rng, int(rng.integers(1, 15)), k, n_lists, int(rng.integers(2, 4 * k + 10)))
        blend = Interleaver(users, k)
        quota = np.zeros((len(users), blend.n_lists), np.int64)
        for u, lists in enumerate(users):
            q = np.floor(rng.dirichlet(np.ones(len(lists))) * k).astype(np.int64)
            q[0] += k - q.sum() + (int(rng.integers(-k, k)) if rng.random() < 0.3 else 0)
            quota[u, :len(lists)] = np.maximum(q, 0)
        got = blend.pick(quota)
        assert got.shape == (len(users), k)
        for u, lists in enumerate(users):
            want = [r for r, _ in pick(lists, quota[u, :len(lists)], k)]
            assert got[u, :len(want)].tolist() == want and (got[u, len(want):] == -1).all()
            checked += 1
    assert checked > 300


def test_interleaver_under_shares_equals_interleave():
    rng = np.random.default_rng(7)
    users = _random_users(rng, 30, 50, 3, 400)
    blend = Interleaver(users, 50)
    for shares in ((1.0, 0.0, 0.0), (0.6, 0.3, 0.1), (0.0, 1.0, 0.0), (0.2, 0.4, 0.4)):
        quota = np.zeros((len(users), blend.n_lists), np.int64)
        for u, lists in enumerate(users):
            quota[u, :len(lists)] = share_quotas(shares[:len(lists)], 50)
        got = blend.pick(quota)
        for u, lists in enumerate(users):
            want = interleave(lists, shares[:len(lists)], 50)
            assert [r for r in got[u].tolist() if r >= 0] == want
