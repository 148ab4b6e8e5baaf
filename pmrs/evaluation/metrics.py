"""Ranking metrics for top-k recommendation on a holdout split.

Definitions (binary relevance: a song is relevant to a user if it is among the user's held-out
songs; ``n_rel`` is their number; ``hit_i`` is 1 if the song at rank ``i`` (1-based) is relevant):

- ``precision@k`` = hits in the top k / k
- ``recall@k`` = hits in the top k / n_rel
- ``map@k`` (MSD Challenge): sum_{i<=k} hit_i * precision@i / min(k, n_rel)
- ``ndcg@k``: sum_{i<=k} hit_i / log2(i + 1), divided by the same sum for the ideal ranking,
  which has min(k, n_rel) hits on top
- ``auc``: the probability that a held-out song scores above a random candidate song that is
  neither in the user's train row nor held out (ties count one half), exact over all songs
- ``coverage@k``: share of all songs in at least one evaluated user's top k

Every metric except coverage is averaged over the users with at least one held-out song. Songs in
a user's train row are never recommended and are not AUC negatives.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from .split import HoldoutSplit, _canonical, _row_ranges

logger = logging.getLogger(__name__)

ScoresFn = Callable[[np.ndarray], np.ndarray]
"""``scores_fn(user_rows) -> (len(user_rows), n_songs) float32`` dense scores, higher is better."""

PER_USER = ("precision", "recall", "map", "ndcg")

# Elements per chunk of the (rows, n_songs) temporaries of top-k and AUC.
_CHUNK_ELEMENTS = 1 << 23
# Elements of the float32 rows whose comparison passes stay in cache (8 MiB).
_CACHE_ELEMENTS = 1 << 21
# Rows with more held-out songs than this get their AUC from one sort of the row (about as
# costly as 2 x 70 comparison passes); the others from two comparison passes per held-out song.
_SORT_ABOVE = 64


def popularity_scores(train: sp.spmatrix) -> np.ndarray:
    """Number of users with each song in ``train``: the popularity baseline's score.

    Parameters
    ----------
    train : scipy.sparse matrix
        ``(n_users, n_songs)``; every stored entry counts as one user.

    Returns
    -------
    np.ndarray
        ``(n_songs,)`` float32.
    """
    return sp.csr_matrix(train).getnnz(axis=0).astype(np.float32)


def _writable_scores(scores: np.ndarray, n_rows: int, n_songs: int) -> np.ndarray:
    """``scores`` as a C-contiguous, writable float32 array of the expected shape."""
    scores = np.require(scores, dtype=np.float32, requirements=["C", "W"])
    if scores.shape != (n_rows, n_songs):
        raise ValueError(f"scores_fn returned shape {scores.shape}, expected {(n_rows, n_songs)}")
    return scores


def _mask_rows(scores: np.ndarray, excluded: sp.csr_matrix) -> np.ndarray:
    """Set ``scores[r, j] = -inf`` where ``excluded[r, j]`` is stored; in place.

    Returns the number of excluded songs per row, ``(n_rows,)`` int64.
    """
    counts = np.diff(excluded.indptr).astype(np.int64)
    rows = np.repeat(np.arange(scores.shape[0]), counts)
    scores[rows, excluded.indices] = -np.inf
    return counts


def _top_k_masked(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores of each row, best first; -inf entries become -1.

    Each row's threshold is the smallest of the maxima of k disjoint slices of the row, so at
    least k scores reach it and only those (a few k, not n_songs) are sorted.

    Parameters
    ----------
    scores : np.ndarray
        ``(n_rows, n_songs)`` float32, excluded songs already at -inf, no NaN.
    k : int
        List length; when ``k > n_songs`` the lists are padded with -1.

    Returns
    -------
    np.ndarray
        ``(n_rows, k)`` int64. Equal scores are listed by ascending song index.
    """
    n_rows, n_songs = scores.shape
    kk = min(k, n_songs)
    top = np.full((n_rows, k), -1, dtype=np.int64)
    if kk == 0:
        return top
    slice_starts = np.arange(kk) * (n_songs // kk)
    chunk = max(1, _CHUNK_ELEMENTS // n_songs)
    for lo in range(0, n_rows, chunk):
        block = scores[lo:lo + chunk]
        rows = block.shape[0]
        threshold = np.maximum.reduceat(block, slice_starts, axis=1).min(axis=1)
        if np.isnan(threshold).any():  # a NaN anywhere in a row makes its threshold NaN
            raise ValueError("scores contain NaN; scores_fn must return finite or -inf scores")
        flat = np.flatnonzero(block >= threshold[:, None])  # row-major: by row, then song
        row = flat // n_songs
        song = flat - row * n_songs
        # descending score within each row; the stable sort keeps ascending songs among ties
        order = np.argsort(_order_keys(-block.ravel()[flat], row), kind="stable")
        per_row = np.bincount(row, minlength=rows)
        first = np.cumsum(per_row) - per_row
        best = order[first[:, None] + np.arange(kk)]
        top[lo:lo + rows, :kk] = np.where(
            block.ravel()[flat[best]] == -np.inf, -1, song[best]
        )
    return top


def top_k(
    scores_fn: ScoresFn,
    users: np.ndarray,
    train: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
) -> np.ndarray:
    """The k best-scoring songs of each user, excluding the songs in the user's train row.

    Parameters
    ----------
    scores_fn : callable
        ``scores_fn(user_rows) -> (len(user_rows), n_songs) float32``. The returned array may be
        modified in place (a read-only or non-float32 array is copied first).
    users : np.ndarray
        ``(n,)`` int row indices.
    train : scipy.sparse.csr_matrix
        ``(n_users, n_songs)``; the stored songs of a row are never recommended to that user.
    k : int
        Length of each list.
    batch_size : int
        Users scored at once; memory is bounded by about ``batch_size * n_songs`` float32.

    Returns
    -------
    np.ndarray
        ``(n, k)`` int64 song indices, best first; -1 pads a list where fewer than k songs are
        left after the exclusion.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    train = _canonical(train)
    users = np.asarray(users, dtype=np.int64)
    out = np.empty((users.size, k), dtype=np.int64)
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        scores = _writable_scores(scores_fn(batch), batch.size, train.shape[1])
        _mask_rows(scores, train[batch])
        out[start:start + batch.size] = _top_k_masked(scores, k)
    return out


def _relevance(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Whether ``recommended[r, i]`` is stored in row ``r`` of ``relevant``: ``(n, K)`` bool."""
    relevant = sp.csr_matrix(relevant)
    if not relevant.has_sorted_indices:
        relevant = relevant.sorted_indices()
    n_rows, n_songs = relevant.shape
    counts = np.diff(relevant.indptr)
    keys = np.repeat(np.arange(n_rows, dtype=np.int64) * n_songs, counts) + relevant.indices
    queries = np.arange(n_rows, dtype=np.int64)[:, None] * n_songs + recommended
    if keys.size == 0:
        return np.zeros(recommended.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    return (keys[pos] == queries) & (recommended >= 0)


def _per_user_metrics(
    recommended: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Precision, recall, mAP and NDCG at each k for each row: ``{"recall@k": (n,) float64}``.

    Row ``r`` of ``relevant`` holds the relevant songs of ``recommended[r]``; rows with no
    relevant song get NaN.
    """
    hits = _relevance(recommended, relevant)
    n_rel = np.diff(relevant.indptr)
    empty = n_rel == 0
    ranks = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)
    precision_sums = np.cumsum(hits * (cum_hits / ranks), axis=1)
    discounts = 1.0 / np.log2(ranks + 1.0)
    dcg = np.cumsum(hits * discounts, axis=1)
    ideal_dcg = np.cumsum(discounts)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        best = np.minimum(k, np.maximum(n_rel, 1))  # min(k, n_rel), 1 for empty rows
        out[f"precision@{k}"] = cum_hits[:, k - 1] / k
        out[f"recall@{k}"] = cum_hits[:, k - 1] / np.maximum(n_rel, 1)
        out[f"map@{k}"] = precision_sums[:, k - 1] / best
        out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal_dcg[best - 1]
    for values in out.values():
        values[empty] = np.nan
    return out


def _check_ks(ks: Sequence[int], list_length: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1 or max(ks) > list_length:
        raise ValueError(f"every k must be in [1, {list_length}] (the list length), got {ks}")
    return ks


def ranking_metrics(
    recommended: np.ndarray,
    test: sp.spmatrix,
    users: np.ndarray,
    ks: Sequence[int] = (10, 50, 500),
    n_songs: int | None = None,
) -> dict[str, float]:
    """Precision, recall, mAP, NDCG and catalog coverage at each k of ranked lists.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n, K)`` int song indices, best first, as :func:`top_k` returns them (-1 = no song).
    test : scipy.sparse matrix
        ``(n_users, n_songs)`` held-out songs; row ``users[r]`` holds the songs relevant to
        ``recommended[r]``.
    users : np.ndarray
        ``(n,)`` int row indices into ``test``.
    ks : sequence of int
        Cut-offs, each at most ``K``.
    n_songs : int, optional
        Catalog size for coverage (default ``test.shape[1]``).

    Returns
    -------
    dict
        ``"precision@k"``, ``"recall@k"``, ``"map@k"``, ``"ndcg@k"`` (means over the users with at
        least one held-out song, NaN if there are none) and ``"coverage@k"`` (over those users'
        lists) for each k, as floats.
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    ks = _check_ks(ks, recommended.shape[1])
    relevant = _canonical(test)[np.asarray(users, dtype=np.int64)]
    evaluated = np.diff(relevant.indptr) > 0
    per_user = _per_user_metrics(recommended, relevant, ks)
    n_songs = relevant.shape[1] if n_songs is None else int(n_songs)
    result: dict[str, float] = {}
    for k in ks:
        for name in PER_USER:
            values = per_user[f"{name}@{k}"][evaluated]
            result[f"{name}@{k}"] = float(values.mean()) if values.size else float("nan")
    for k in ks:
        seen = recommended[evaluated, :k]
        result[f"coverage@{k}"] = float(np.unique(seen[seen >= 0]).size / n_songs)
    return result


def _order_keys(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """int64 keys that sort like ``(rows, values)``: exact, for float32 ``values`` without NaN.

    ``rows`` broadcasts against ``values``; the result has ``values``' shape.
    """
    bits = (values + np.float32(0.0)).view(np.int32)  # a copy; -0.0 becomes +0.0
    bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats: reverse their order, stay negative
    keys = np.empty(bits.shape, dtype=np.int64)
    np.add(np.left_shift(np.asarray(rows, dtype=np.int64), 32), bits, out=keys)
    return keys


def _count_rows(mask: np.ndarray) -> np.ndarray:
    """True entries per row of a 2-d bool array, ``(n_rows,)`` int64 (faster than count_nonzero)."""
    return mask.view(np.uint8).sum(axis=1, dtype=np.int32).astype(np.int64)


def _rows_of(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``scores[rows]``: a view when ``rows`` is an ascending run of consecutive rows."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
        return scores[rows[0]:rows[-1] + 1]
    return scores[rows]


def _credit_by_sort(scores: np.ndarray, rows: np.ndarray, entry_rows: np.ndarray,
                    entry_scores: np.ndarray) -> np.ndarray:
    """``count(row < s) + (count(row == s) - 1) / 2`` per entry, from one sort of each row."""
    block = _rows_of(scores, rows)
    local = np.searchsorted(rows, entry_rows)  # rows ascending
    sorted_keys = _order_keys(np.sort(block, axis=1), np.arange(rows.size)[:, None]).ravel()
    keys = _order_keys(entry_scores, local)
    base = local * block.shape[1]
    below = np.searchsorted(sorted_keys, keys, side="left") - base
    tied = np.searchsorted(sorted_keys, keys, side="right") - base - below
    return below + 0.5 * (tied - 1)


def _auc_masked(scores: np.ndarray, relevant: sp.csr_matrix, n_excluded: np.ndarray) -> np.ndarray:
    """Exact AUC per row of scores whose excluded songs are at -inf (see :func:`auc_per_user`).

    A held-out song p earns one credit per negative scored below it and one half per negative
    tied with it; the row's AUC is its total credit over ``n_pos * n_neg``. Songs below p are
    the excluded ones (at -inf), negatives and positives; pairs of positives add
    ``n_pos * (n_pos - 1) / 2`` whatever their order, so they are subtracted at the end.

    A row with few held-out songs is counted with two comparison passes per held-out song; a
    row with many (more than ``_SORT_ABOVE``), with one sort. Rows in descending order of
    held-out songs are processed as views, other orders cost copies.
    """
    n_rows, n_songs = scores.shape
    n_pos = np.diff(relevant.indptr).astype(np.int64)
    entry_rows = np.repeat(np.arange(n_rows), n_pos)
    entry_scores = scores[entry_rows, relevant.indices]
    credit = np.zeros(entry_rows.size, dtype=np.float64)

    light = np.flatnonzero((n_pos > 0) & (n_pos <= _SORT_ABOVE))
    light = light[np.argsort(-n_pos[light], kind="stable")]
    # A few rows at a time, so they stay in cache across their 2 * n_pos comparison passes.
    chunk = max(1, _CACHE_ELEMENTS // n_songs)
    buf = np.empty((min(chunk, light.size), n_songs), dtype=bool)
    for lo in range(0, light.size, chunk):
        rows = light[lo:lo + chunk]
        for j in range(int(n_pos[rows[0]])):  # the j-th held-out song of each row that has one
            active = rows[: np.count_nonzero(n_pos[rows] > j)]
            block = _rows_of(scores, active)
            entries = relevant.indptr[active] + j
            threshold = entry_scores[entries][:, None]
            mask = buf[: active.size]
            below = _count_rows(np.less(block, threshold, out=mask))
            at_most = _count_rows(np.less_equal(block, threshold, out=mask))
            credit[entries] = below + 0.5 * (at_most - below - 1)

    heavy = np.flatnonzero(n_pos > _SORT_ABOVE)
    for lo in range(0, heavy.size, max(1, _CHUNK_ELEMENTS // n_songs)):
        rows = heavy[lo:lo + max(1, _CHUNK_ELEMENTS // n_songs)]
        entries = _row_ranges(relevant.indptr, rows)
        credit[entries] = _credit_by_sort(scores, rows, entry_rows[entries], entry_scores[entries])

    credit -= n_excluded[entry_rows]
    total = np.bincount(entry_rows, weights=credit, minlength=n_rows) - n_pos * (n_pos - 1) / 2.0
    n_neg = n_songs - n_excluded - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), total / (n_pos * n_neg), np.nan)


def auc_per_user(
    scores: np.ndarray, relevant: sp.spmatrix, excluded: sp.spmatrix | None = None
) -> np.ndarray:
    """Exact AUC of each row of scores: P(held-out song scores above a random negative).

    Negatives are the songs neither relevant nor excluded; a tie counts one half.

    Parameters
    ----------
    scores : np.ndarray
        ``(n, n_songs)`` float32 scores (not modified), no NaN.
    relevant : scipy.sparse matrix
        ``(n, n_songs)``: row ``r`` stores the held-out songs of ``scores[r]``'s user.
    excluded : scipy.sparse matrix, optional
        ``(n, n_songs)``: row ``r`` stores the user's train songs, which are left out; must not
        overlap ``relevant``.

    Returns
    -------
    np.ndarray
        ``(n,)`` float64, NaN for a row with no relevant or no negative song.
    """
    scores = np.array(scores, dtype=np.float32, order="C", copy=True)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    relevant = _canonical(relevant)
    if excluded is None:
        n_excluded = np.zeros(scores.shape[0], dtype=np.int64)
    else:
        n_excluded = _mask_rows(scores, _canonical(excluded))
    return _auc_masked(scores, relevant, n_excluded)


def evaluate_scores(
    scores_fn: ScoresFn,
    split: HoldoutSplit,
    ks: Sequence[int] = (10, 50, 500),
    batch_size: int = 1024,
    show_progress: bool | None = None,
) -> dict[str, float]:
    """All ranking metrics of a scoring function on a holdout split, in one pass.

    Scores the test users with at least one held-out song in batches, excludes their train
    songs, and computes the top-``max(ks)`` lists, the exact AUC and every metric of
    :func:`ranking_metrics`. Memory is bounded by about ``batch_size * n_songs`` float32 (plus
    ``O(n_songs)``), whatever the number of test users.

    Parameters
    ----------
    scores_fn : callable
        ``scores_fn(user_rows) -> (len(user_rows), n_songs) float32``; see :func:`top_k`.
    split : HoldoutSplit
        The split the model was trained on (its ``train``).
    ks : sequence of int
        Cut-offs.
    batch_size : int
        Users scored at once.
    show_progress : bool
        Show a tqdm progress bar over the test users.

    Returns
    -------
    dict
        ``"precision@k"``, ``"recall@k"``, ``"map@k"``, ``"ndcg@k"``, ``"coverage@k"`` for each k,
        and ``"auc"``, as floats (means over the evaluated users; NaN if there are none).

    Examples
    --------
    >>> evaluate_scores(lambda u: user_factors[u] @ song_factors.T, split, ks=(10, 500))["map@500"]
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"every k must be at least 1, got {ks}")
    max_k = max(ks)
    train = _canonical(split.train)
    test = _canonical(split.test)
    n_songs = train.shape[1]
    users = np.asarray(split.test_users, dtype=np.int64)
    held_out = np.diff(test.indptr)[users]
    # Most held-out songs first: each batch's AUC then works on views of its scores.
    users = users[held_out > 0][np.argsort(-held_out[held_out > 0], kind="stable")]

    sums = {f"{name}@{k}": 0.0 for k in ks for name in PER_USER}
    auc_sum, auc_count = 0.0, 0
    seen = {k: np.zeros(n_songs, dtype=bool) for k in ks}
    bar = tqdm(
        total=users.size, unit="user", desc="evaluate", leave=False, disable=None if show_progress is None else not show_progress
    )
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        scores = _writable_scores(scores_fn(batch), batch.size, n_songs)
        relevant = test[batch]
        n_excluded = _mask_rows(scores, train[batch])
        top = _top_k_masked(scores, max_k)
        for key, values in _per_user_metrics(top, relevant, ks).items():
            sums[key] += float(values.sum())
        auc = _auc_masked(scores, relevant, n_excluded)
        auc = auc[~np.isnan(auc)]
        auc_sum, auc_count = auc_sum + float(auc.sum()), auc_count + auc.size
        for k in ks:
            listed = top[:, :k]
            seen[k][listed[listed >= 0]] = True
        bar.update(batch.size)
    bar.close()

    n = users.size
    result = {
        f"{name}@{k}": sums[f"{name}@{k}"] / n if n else float("nan")
        for k in ks for name in PER_USER
    }
    for k in ks:
        result[f"coverage@{k}"] = float(seen[k].sum() / n_songs)
    result["auc"] = auc_sum / auc_count if auc_count else float("nan")
    logger.debug("evaluated %d test users over %d songs", n, n_songs)   # callers log their summary
    return result


def per_user_metrics(recommended: np.ndarray, relevant: sp.spmatrix, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per row of ``recommended`` (``(n, K)`` song indices, -1 = none) against the same row of
    ``relevant`` (``(n, n_songs)``): ``precision@k``, ``recall@k``, ``map@k``, ``ndcg@k`` as in
    this module's definitions, and ``capped_recall@k`` = hits in the top k / min(k, n_rel) (Liang
    et al. 2018's Recall@k), each ``(n,)`` float64, NaN for a row with no relevant song."""
    recommended = np.asarray(recommended, dtype=np.int64)
    ks = _check_ks(ks, recommended.shape[1])
    relevant = _canonical(relevant)
    out = _per_user_metrics(recommended, relevant, ks)
    hits = _relevance(recommended, relevant)
    n_rel = np.diff(relevant.indptr)
    for k in ks:
        capped = hits[:, :k].sum(axis=1) / np.minimum(k, np.maximum(n_rel, 1))
        out[f"capped_recall@{k}"] = np.where(n_rel > 0, capped, np.nan)
    return out
