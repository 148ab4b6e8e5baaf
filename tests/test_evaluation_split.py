"""Tests for pmrs.evaluation.split: the holdout protocol of the PMRS paper."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pmrs.evaluation.split import HoldoutSplit, holdout_split, validation_split


def _plays(n_users: int = 400, n_songs: int = 150, seed: int = 0) -> sp.csr_matrix:
    """Random int32 play counts; users have 0 to ~60 songs, so some are ineligible."""
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.0, 0.4, size=(n_users, 1))
    mask = rng.random((n_users, n_songs)) < density
    counts = rng.integers(1, 50, size=(n_users, n_songs)) * mask
    return sp.csr_matrix(counts.astype(np.int32))


def _rows(matrix: sp.csr_matrix) -> np.ndarray:
    return np.flatnonzero(np.diff(matrix.indptr))


def test_train_plus_test_is_the_input_exactly() -> None:
    plays = _plays()
    split = holdout_split(plays, test_users=0.2, holdout_fraction=0.25, min_songs=5, seed=3)
    assert isinstance(split, HoldoutSplit)
    assert split.train.dtype == plays.dtype and split.test.dtype == plays.dtype
    assert split.train.shape == plays.shape and split.test.shape == plays.shape
    assert (split.train + split.test != plays).nnz == 0
    # disjoint: no (user, song) pair in both
    assert split.train.multiply(split.test).nnz == 0
    assert split.train.nnz + split.test.nnz == plays.nnz
    assert split.train.has_canonical_format and split.test.has_canonical_format


def test_test_users_are_eligible_sorted_and_the_only_test_rows() -> None:
    plays = _plays()
    per_user = np.diff(plays.indptr)
    split = holdout_split(plays, test_users=0.3, min_songs=8, seed=1)
    users = split.test_users
    assert users.dtype == np.int64
    assert np.all(np.diff(users) > 0)
    assert np.all(per_user[users] >= 8)
    n_eligible = int((per_user >= 8).sum())
    assert users.size == round(0.3 * n_eligible)
    np.testing.assert_array_equal(_rows(split.test), users)
    # every other user is untouched
    others = np.setdiff1d(np.arange(plays.shape[0]), users)
    assert (split.train[others] != plays[others]).nnz == 0


def test_each_test_user_keeps_and_holds_out_songs_in_proportion() -> None:
    plays = _plays(n_users=600)
    split = holdout_split(plays, test_users=200, holdout_fraction=0.2, min_songs=2, seed=0)
    users = split.test_users
    assert users.size == 200
    total = np.diff(plays.indptr)[users]
    held = np.diff(split.test.indptr)[users]
    kept = np.diff(split.train.indptr)[users]
    assert np.all(held >= 1) and np.all(kept >= 1)
    np.testing.assert_array_equal(held + kept, total)
    expected = np.clip(np.rint(0.2 * total), 1, total - 1)
    np.testing.assert_array_equal(held, expected)
    assert abs(held.sum() / total.sum() - 0.2) < 0.02


def test_two_song_users_hold_out_one_and_keep_one() -> None:
    plays = sp.csr_matrix(np.array([[1, 1, 0], [0, 2, 3]], dtype=np.float32))
    split = holdout_split(plays, test_users=2, holdout_fraction=0.9, min_songs=1, seed=0)
    np.testing.assert_array_equal(np.diff(split.test.indptr), [1, 1])
    np.testing.assert_array_equal(np.diff(split.train.indptr), [1, 1])


def test_same_seed_same_split_other_seed_other_split() -> None:
    plays = _plays()
    a = holdout_split(plays, test_users=50, seed=7)
    b = holdout_split(plays, test_users=50, seed=7)
    c = holdout_split(plays, test_users=50, seed=8)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert (a.test != b.test).nnz == 0 and (a.train != b.train).nnz == 0
    assert not np.array_equal(a.test_users, c.test_users)


def test_exclude_users_are_never_test_users() -> None:
    plays = _plays()
    eligible = np.flatnonzero(np.diff(plays.indptr) >= 5)
    excluded = eligible[::2]
    split = holdout_split(plays, test_users=1.0, exclude_users=excluded, seed=0)
    assert np.intersect1d(split.test_users, excluded).size == 0
    # a share of 1.0 takes every eligible user that is not excluded
    np.testing.assert_array_equal(split.test_users, np.setdiff1d(eligible, excluded))


def test_validation_split_uses_train_only_and_never_test_users() -> None:
    plays = _plays(n_users=500)
    outer = holdout_split(plays, test_users=0.3, seed=0)
    inner = validation_split(outer, test_users=0.3, seed=1)
    assert np.intersect1d(inner.test_users, outer.test_users).size == 0
    assert np.intersect1d(_rows(inner.test), outer.test_users).size == 0
    # drawn from the outer train matrix: together they give it back, and never hold a test song
    assert (inner.train + inner.test != outer.train).nnz == 0
    assert inner.test.multiply(outer.test).nnz == 0
    # the test users' rows stay whole (as in outer.train) in the validation train matrix
    assert (inner.train[outer.test_users] != outer.train[outer.test_users]).nnz == 0


def test_non_csr_and_duplicate_entries_are_accepted() -> None:
    coo = sp.coo_matrix(
        (np.ones(8, dtype=np.float32), ([0, 0, 0, 0, 0, 1, 1, 1], [0, 1, 1, 2, 3, 0, 2, 3])),
        shape=(2, 4),
    )
    split = holdout_split(coo, test_users=2, min_songs=3, seed=0)
    assert (split.train + split.test != coo.tocsr()).nnz == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"holdout_fraction": 0.0},
        {"holdout_fraction": 1.0},
        {"test_users": 10_000},
        {"test_users": 1.5},
        {"exclude_users": np.array([10_000])},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        holdout_split(_plays(), **kwargs)


def test_time_split_holds_out_each_test_users_latest_songs():
    import numpy as np
    import scipy.sparse as sp

    from pmrs.evaluation.split import time_split

    m = sp.csr_matrix(np.array([[1, 2, 3, 4, 5], [1, 1, 0, 1, 1], [0, 0, 1, 1, 0]]))
    first = np.array([10, 50, 30, 20, 40, 5, 6, 7, 8, 1, 2])   # per stored pair, row by row
    s = time_split(m, first, test_users=3, holdout_fraction=0.4, min_songs=2)
    assert s.test.toarray().tolist() == [[0, 2, 0, 0, 5], [0, 0, 0, 1, 1], [0, 0, 0, 1, 0]]
    assert ((s.train + s.test) != m).nnz == 0
    s = time_split(m, first, test_users=3, cutoff=30, min_songs=2)   # only user 0 has both sides
    assert s.test_users.tolist() == [0] and s.test.toarray()[0].tolist() == [0, 2, 3, 0, 5]
    unknown = np.where(np.arange(11) < 5, 0, first)                   # user 0's times unknown
    s = time_split(m, unknown, test_users=3, holdout_fraction=0.4, min_songs=2)
    assert 0 not in s.test_users.tolist()
    with pytest.raises(ValueError, match="time"):
        time_split(m, np.zeros(11, np.int64), test_users=1, min_songs=2)


def test_a_validation_split_is_drawn_as_its_test_split_is():
    # a time split's settings are chosen on validation users whose latest songs are held out
    import numpy as np
    import scipy.sparse as sp

    from pmrs.evaluation.split import draw_validation, pair_times, split_times, times_matrix

    m = sp.csr_matrix(np.array([[1, 2, 3, 4, 5], [1, 1, 0, 1, 1], [0, 0, 1, 1, 0]]))
    first = np.array([10, 50, 30, 20, 40, 5, 6, 7, 8, 1, 2])
    kw = dict(holdout_fraction=0.4, min_songs=2, seed=0)
    s = draw_validation(m, 2, first_played=first, exclude_users=np.array([1]), **kw)
    assert s.test_users.tolist() == [0, 2]
    assert s.test.toarray().tolist() == [[0, 2, 0, 0, 5], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    r = draw_validation(m, 2, exclude_users=np.array([1]), **kw)      # no times: songs at random
    assert r.test_users.tolist() == [0, 2] and ((r.train + r.test) != m).nnz == 0
    assert split_times("random", first) is None and split_times("time", first).tolist() == first.tolist()
    with pytest.raises(ValueError, match="times"):
        split_times("time", None)
    # times travel with a slice of the matrix (a sample of users, of songs), pair for pair
    t = times_matrix(m, np.where(np.arange(11) == 0, 0, first))       # (a time 0, unknown, is kept)
    part = t[[0, 2]][:, [0, 2, 3]].tocsr()
    assert pair_times(part).tolist() == [0, 30, 20, 1, 2]
