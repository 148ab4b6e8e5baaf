"""Tests for pmrs.evaluation.metrics: hand-computed examples and a cross-check with implicit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from pmrs.evaluation import metrics
from pmrs.evaluation.metrics import (
    auc_per_user,
    evaluate_scores,
    popularity_scores,
    ranking_metrics,
    top_k,
)
from pmrs.evaluation.split import HoldoutSplit, holdout_split


def _csr(rows: list[list[int]], n_songs: int) -> sp.csr_matrix:
    """A 0/1 CSR with the given song indices stored in each row."""
    dense = np.zeros((len(rows), n_songs), dtype=np.float32)
    for r, songs in enumerate(rows):
        dense[r, songs] = 1.0
    return sp.csr_matrix(dense)


def test_ranking_metrics_hand_computed() -> None:
    # 6 songs. User 0 has held out {0, 2} and is shown [0, 4, 2]; user 1 has held out {5} and is
    # shown [1, 3, 5]; user 2 has nothing held out and is left out of every average.
    test = _csr([[0, 2], [5], []], n_songs=6)
    recommended = np.array([[0, 4, 2], [1, 3, 5], [3, 3, 3]])
    m = ranking_metrics(recommended, test, np.array([0, 1, 2]), ks=(1, 3))

    # user 0: hits at ranks 1 and 3.  P@3 = 2/3, R@3 = 2/2,
    #   AP@3 = (1/1 + 2/3) / min(3, 2), NDCG@3 = (1 + 1/log2(4)) / (1 + 1/log2(3))
    # user 1: hit at rank 3.  P@3 = 1/3, R@3 = 1/1, AP@3 = (1/3) / 1, NDCG@3 = (1/log2(4)) / 1
    ap0, ap1 = (1 + 2 / 3) / 2, 1 / 3
    ndcg0, ndcg1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), 1 / math.log2(4)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["map@3"] == pytest.approx((ap0 + ap1) / 2)
    assert m["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    # at 1: user 0 hits (P = 1, R = 1/2, AP = 1/min(1, 2) = 1, NDCG = 1); user 1 misses
    assert m["precision@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["map@1"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.5)
    # coverage over the evaluated users' lists only: top-1 {0, 1} -> 2/6; top-3 all six songs
    assert m["coverage@1"] == pytest.approx(2 / 6)
    assert m["coverage@3"] == pytest.approx(1.0)
    assert all(type(v) is float for v in m.values())


def test_ranking_metrics_users_map_rows_and_padding_is_a_miss() -> None:
    # recommended row r belongs to test row users[r]; -1 (no song) never hits nor covers.
    test = _csr([[], [3], [0, 1]], n_songs=4)
    recommended = np.array([[0, -1], [3, -1]])
    m = ranking_metrics(recommended, test, np.array([2, 1]), ks=(2,), n_songs=8)
    # user 2: held out {0, 1}, shown [0]: P@2 = 1/2, R@2 = 1/2, AP@2 = 1/2, NDCG = 1/(1+1/log2 3)
    # user 1: held out {3}, shown [3]: P@2 = 1/2, R@2 = 1, AP@2 = 1, NDCG = 1
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(0.75)
    assert m["map@2"] == pytest.approx(0.75)
    assert m["ndcg@2"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1) / 2)
    assert m["coverage@2"] == pytest.approx(2 / 8)


def test_ranking_metrics_rejects_k_longer_than_lists() -> None:
    with pytest.raises(ValueError):
        ranking_metrics(np.zeros((1, 5), dtype=np.int64), _csr([[1]], 6), np.array([0]), ks=(10,))


def test_auc_hand_computed_with_exclusion_and_ties() -> None:
    # 5 songs; song 4 is in train (excluded, despite its top score); held out {0, 2};
    # negatives {1, 3}. Song 0 (0.9) beats both negatives, song 2 (0.1) beats none: 2 / (2*2).
    scores = np.array([[0.9, 0.8, 0.1, 0.5, 5.0]], dtype=np.float32)
    relevant, excluded = _csr([[0, 2]], 5), _csr([[4]], 5)
    assert auc_per_user(scores, relevant, excluded)[0] == pytest.approx(0.5)
    # without the exclusion song 4 is a negative above both: 2 / (2*3)
    assert auc_per_user(scores, relevant)[0] == pytest.approx(1 / 3)
    # a tie counts half: held out {1} at 0.5 vs negatives 0.5 (tie), 0.2, 0.7 -> (0.5 + 1) / 3
    tied = np.array([[0.5, 0.5, 0.2, 0.7]], dtype=np.float32)
    assert auc_per_user(tied, _csr([[1]], 4))[0] == pytest.approx(0.5)
    # no held-out song -> NaN; input scores are not modified
    assert math.isnan(auc_per_user(scores, _csr([[]], 5))[0])
    assert scores[0, 4] == np.float32(5.0)


@pytest.mark.parametrize("sort_above", [0, 3, 1000])
def test_auc_matches_pairwise_brute_force(monkeypatch: pytest.MonkeyPatch, sort_above: int) -> None:
    # sort_above picks the counting path: 0 sorts every row, 1000 compares for every row
    monkeypatch.setattr(metrics, "_SORT_ABOVE", sort_above)
    rng = np.random.default_rng(4)
    n_users, n_songs = 30, 50
    # rounded scores to create many ties, negative zeros included
    scores = np.round(rng.normal(size=(n_users, n_songs)), 1).astype(np.float32)
    scores[0, :5] = -0.0
    choice = rng.random((n_users, n_songs))
    relevant = sp.csr_matrix((choice < 0.15).astype(np.float32))
    excluded = sp.csr_matrix(((choice >= 0.15) & (choice < 0.4)).astype(np.float32))
    got = auc_per_user(scores, relevant, excluded)
    for u in range(n_users):
        pos = relevant[u].indices
        neg = np.setdiff1d(np.arange(n_songs), np.union1d(pos, excluded[u].indices))
        if pos.size == 0:
            assert math.isnan(got[u])
            continue
        sp_, sn = scores[u, pos][:, None], scores[u, neg][None, :]
        assert got[u] == pytest.approx(((sp_ > sn) + 0.5 * (sp_ == sn)).mean(), abs=1e-12)


def test_top_k_excludes_train_sorts_pads_and_breaks_ties_by_index() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.7], [1.0, 2.0, 3.0, 4.0, 5.0]], dtype=np.float32)
    train = _csr([[1], [0, 1, 2, 3]], 5)
    got = top_k(lambda users: scores[users].copy(), np.array([0, 1]), train, k=3)
    assert got.dtype == np.int64
    # user 0: 0.7 (song 4), then the 0.5 tie: song 2 before song 3; song 1 (train) never
    np.testing.assert_array_equal(got[0], [4, 2, 3])
    # user 1: only song 4 is left, then padding
    np.testing.assert_array_equal(got[1], [4, -1, -1])
    # k beyond the catalog pads as well
    assert top_k(lambda u: scores[u].copy(), np.array([0]), train, k=7)[0].tolist() == [
        4, 2, 3, 0, -1, -1, -1
    ]


def test_top_k_is_independent_of_batch_size_and_accepts_read_only_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 30)).astype(np.float32)
    scores.setflags(write=False)
    train = sp.csr_matrix((rng.random((40, 30)) < 0.3).astype(np.float32))
    users = np.arange(40)[::-1]
    seen_batches: list[int] = []

    def scores_fn(rows: np.ndarray) -> np.ndarray:
        seen_batches.append(rows.size)
        return scores[rows]

    a = top_k(scores_fn, users, train, k=10, batch_size=7)
    assert max(seen_batches) == 7
    b = top_k(scores_fn, users, train, k=10, batch_size=1000)
    np.testing.assert_array_equal(a, b)
    full = np.where(train.toarray() > 0, -np.inf, scores)[users]
    np.testing.assert_array_equal(a, np.argsort(-full, axis=1, kind="stable")[:, :10])


def test_top_k_matches_a_full_sort_with_ties_and_nearly_excluded_rows() -> None:
    rng = np.random.default_rng(5)
    n_users, n_songs, k = 25, 500, 50
    scores = np.round(rng.normal(size=(n_users, n_songs)), 1).astype(np.float32)  # many ties
    excluded = rng.random((n_users, n_songs)) < 0.3
    excluded[3, 3:] = True  # only songs 0, 1, 2 are left for user 3
    train = sp.csr_matrix(excluded.astype(np.float32))
    got = top_k(lambda u: scores[u].copy(), np.arange(n_users), train, k=k, batch_size=8)
    full = np.where(excluded, -np.inf, scores)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :k]  # ties: lower index first
    expected[np.take_along_axis(full, expected, axis=1) == -np.inf] = -1
    np.testing.assert_array_equal(got, expected)
    assert got[3, :3].tolist() == sorted(range(3), key=lambda j: (-scores[3, j], j))
    assert np.all(got[3, 3:] == -1)


def test_nan_scores_are_rejected() -> None:
    scores = np.array([[0.1, np.nan, 0.3]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        top_k(lambda u: scores.copy(), np.array([0]), _csr([[]], 3), k=2)
    with pytest.raises(ValueError, match="NaN"):
        auc_per_user(scores, _csr([[0]], 3))


def test_popularity_scores_counts_users_per_song() -> None:
    train = sp.csr_matrix(np.array([[3, 0, 1], [0, 0, 9], [1, 0, 2]], dtype=np.int32))
    pop = popularity_scores(train)
    assert pop.dtype == np.float32
    np.testing.assert_array_equal(pop, [2, 0, 3])


def _planted(n_users: int = 300, n_songs: int = 200, seed: int = 0) -> sp.csr_matrix:
    """Play counts drawn from a rank-4 taste model (every user has some songs)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_users, 4)) @ rng.normal(size=(n_songs, 4)).T - 2.5
    mask = rng.random((n_users, n_songs)) < 1.0 / (1.0 + np.exp(-logits))
    counts = rng.integers(1, 20, size=(n_users, n_songs)) * mask
    return sp.csr_matrix(counts.astype(np.float32))


def test_evaluate_scores_matches_the_separate_functions() -> None:
    split = holdout_split(_planted(), test_users=80, holdout_fraction=0.3, seed=2)
    pop = popularity_scores(split.train)
    scores_fn = lambda users: np.tile(pop, (users.size, 1))  # noqa: E731 (many ties)
    got = evaluate_scores(scores_fn, split, ks=(5, 20), batch_size=16)
    assert set(got) == {
        f"{m}@{k}" for m in ("precision", "recall", "map", "ndcg", "coverage") for k in (5, 20)
    } | {"auc"}
    assert all(type(v) is float for v in got.values())
    users = split.test_users
    rec = top_k(scores_fn, users, split.train, k=20)
    expected = ranking_metrics(rec, split.test, users, ks=(5, 20))
    expected["auc"] = float(
        np.mean(auc_per_user(scores_fn(users), split.test[users], split.train[users]))
    )
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert evaluate_scores(scores_fn, split, ks=(5, 20), batch_size=1000) == pytest.approx(got)


def test_evaluate_scores_with_k_beyond_the_catalog() -> None:
    # 200 songs, default ks (10, 50, 500): the top-500 lists are padded, recall@500 is 1
    split = holdout_split(_planted(), test_users=30, seed=4)
    rng = np.random.default_rng(0)
    got = evaluate_scores(
        lambda u: rng.normal(size=(u.size, 200)).astype(np.float32), split, show_progress=False
    )
    assert got["recall@500"] == pytest.approx(1.0)
    assert got["coverage@500"] <= 1.0 and 0.4 < got["auc"] < 0.6


def test_evaluate_scores_perfect_and_reversed_scores() -> None:
    split = holdout_split(_planted(seed=1), test_users=50, seed=0)
    truth = split.test.toarray()

    perfect = evaluate_scores(lambda u: truth[u].astype(np.float32), split, ks=(1, 5))
    assert perfect["auc"] == pytest.approx(1.0)
    assert perfect["ndcg@5"] == pytest.approx(1.0) and perfect["map@5"] == pytest.approx(1.0)
    assert perfect["precision@1"] == pytest.approx(1.0)
    reversed_ = evaluate_scores(lambda u: -truth[u].astype(np.float32), split, ks=(1, 5))
    assert reversed_["auc"] == pytest.approx(0.0)
    assert reversed_["recall@5"] == pytest.approx(0.0)


def _implicit_variants(
    recommended: np.ndarray, test: sp.csr_matrix, users: np.ndarray, k: int
) -> dict[str, float]:
    """implicit 0.7's definitions in implicit/evaluation.pyx (ranking_metrics_at_k), from a
    ranking, written out plainly (one loop per user) so they check ours independently."""
    n_items = test.shape[1]
    hits_total = div_total = 0.0
    ap_sum = ndcg_sum = auc_sum = 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row, u in zip(recommended, users):
        likes = set(test[u].indices.tolist())
        n_pos = len(likes)
        n_neg = n_items - n_pos  # implicit: every non-held-out item, train items included
        hit = miss = 0
        ap = dcg = auc = 0.0
        for i, song in enumerate(row[:k]):
            if song in likes:
                hit += 1
                ap += hit / (i + 1)
                dcg += discounts[i]
            else:
                miss += 1
                auc += hit
        auc += (hit + n_pos) / 2.0 * (n_neg - miss)
        hits_total += hit
        div_total += min(k, n_pos)
        ap_sum += ap / min(k, n_pos)
        ndcg_sum += dcg / discounts[: min(k, n_pos)].sum()
        auc_sum += auc / (n_pos * n_neg)
    n = len(users)
    return {
        "precision": hits_total / div_total,
        "map": ap_sum / n,
        "ndcg": ndcg_sum / n,
        "auc": auc_sum / n,
    }


def test_metrics_agree_with_implicit_ranking_metrics_at_k() -> None:
    implicit_als = pytest.importorskip("implicit.als")
    implicit_evaluation = pytest.importorskip("implicit.evaluation")

    split = holdout_split(_planted(), test_users=100, holdout_fraction=0.3, seed=0)
    with threadpool_limits(1, "blas"):
        model = implicit_als.AlternatingLeastSquares(
            factors=16, iterations=5, random_state=0, use_gpu=False
        )
        model.fit(split.train, show_progress=False)
        k = 10
        theirs = implicit_evaluation.ranking_metrics_at_k(
            model, split.train, split.test, K=k, show_progress=False
        )
        ids, _ = model.recommend(split.test_users, split.train[split.test_users], N=k)

    def scores_fn(users: np.ndarray) -> np.ndarray:
        return model.user_factors[users] @ model.item_factors.T

    users = split.test_users  # implicit evaluates the users with held-out songs: the same ones
    ours = evaluate_scores(scores_fn, split, ks=(k,))
    rec = top_k(scores_fn, users, split.train, k)
    # Same ranking: implicit's recommend also drops the user's train (liked) items.
    np.testing.assert_array_equal(rec, ids)

    # Same definitions: mAP@K (AP / min(K, n_rel)) and NDCG@K (ideal DCG over min(K, n_rel)).
    assert ours["map@10"] == pytest.approx(theirs["map"], abs=1e-6)
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg"], abs=1e-6)

    # Different definitions, recomputed from our ranking and checked against implicit:
    # - precision: implicit micro-averages hits over sum_u min(K, n_rel_u); ours is the mean over
    #   users of hits / K.
    # - auc: implicit's is a top-K approximation (pairs inside the top K, then every negative
    #   below the list credited (hits + n_rel) / 2 positives) over negatives = all items not held
    #   out, train items included; ours is exact over the whole ranking with train items left out.
    variants = _implicit_variants(rec, split.test, users, k)
    for key in ("precision", "map", "ndcg", "auc"):
        assert variants[key] == pytest.approx(theirs[key], abs=1e-6), key
    n_rel = np.diff(split.test.indptr)[users]
    hits = np.array([np.isin(r, split.test[u].indices).sum() for r, u in zip(rec, users)])
    assert ours["precision@10"] == pytest.approx(np.mean(hits / k), abs=1e-12)
    assert ours["recall@10"] == pytest.approx(np.mean(hits / n_rel), abs=1e-12)
    assert variants["precision"] == pytest.approx(hits.sum() / np.minimum(k, n_rel).sum())
    assert ours["precision@10"] != pytest.approx(theirs["precision"], abs=1e-3)
    assert ours["auc"] != pytest.approx(theirs["auc"], abs=1e-3)


def test_empty_split_gives_nan() -> None:
    plays = _planted(n_users=20, n_songs=10)
    empty = sp.csr_matrix(plays.shape, dtype=plays.dtype)
    split = HoldoutSplit(train=plays, test=empty, test_users=np.arange(5))
    got = evaluate_scores(lambda u: np.zeros((u.size, 10), np.float32), split, ks=(3,))
    assert math.isnan(got["auc"]) and math.isnan(got["map@3"])
    assert got["coverage@3"] == 0.0
