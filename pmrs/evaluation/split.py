"""Holdout splits of the users x songs matrix (the PMRS paper protocol).

A random set of test users, each with at least ``min_songs`` songs, has a random
``holdout_fraction`` of its songs moved to a test matrix; the model trains on the rest. Every
other user stays whole in the training matrix. All steps are vectorised over the CSR arrays, so a
1M x 400k matrix with 48M nonzeros splits in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


@dataclass
class HoldoutSplit:
    """A train matrix and the held-out songs of the test users.

    Attributes
    ----------
    train : scipy.sparse.csr_matrix
        ``(n_users, n_songs)``, the input's dtype: the input with the held-out entries removed.
    test : scipy.sparse.csr_matrix
        ``(n_users, n_songs)``, the input's dtype: only the held-out entries of the test users.
        ``train + test`` equals the input exactly.
    test_users : np.ndarray
        ``(n_test_users,)`` int64, sorted row indices of the test users.
    """

    train: sp.csr_matrix
    test: sp.csr_matrix
    test_users: np.ndarray


def _canonical(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR with sorted indices and no duplicates (a copy only where needed)."""
    if not sp.isspmatrix_csr(matrix):
        matrix = sp.csr_matrix(matrix)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def _row_ranges(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in ``indices``/``data`` of all entries of ``rows``, row after row (int64)."""
    starts = indptr[rows].astype(np.int64)
    lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total, dtype=np.int64)


def _select(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """The entries of ``matrix`` where the boolean mask ``keep`` (one per nonzero) is set."""
    kept_before = np.zeros(matrix.nnz + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    indptr = kept_before[matrix.indptr].astype(matrix.indptr.dtype)
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape, copy=False
    )


def holdout_split(
    matrix: sp.spmatrix,
    *,
    test_users: int | float = 0.1,
    holdout_fraction: float = 0.2,
    min_songs: int = 5,
    seed: int = 0,
    exclude_users: np.ndarray | None = None,
) -> HoldoutSplit:
    """Hold out a random share of the songs of random test users.

    Parameters
    ----------
    matrix : scipy.sparse matrix
        ``(n_users, n_songs)`` play counts (or confidences), any dtype; CSR is used as is,
        other formats are converted. Each stored entry is one (user, song) pair.
    test_users : int or float
        How many test users: a count if int, a share of the eligible users if float in (0, 1].
    holdout_fraction : float
        Share of each test user's songs moved to ``test``, in (0, 1). Rounded to the nearest
        count, then clipped so that at least 1 song is held out and at least 1 stays in train.
    min_songs : int
        Only users with at least ``max(min_songs, 2)`` songs are eligible as test users.
    seed : int
        Seed of the random generator; the same inputs and seed give the same split.
    exclude_users : np.ndarray, optional
        Row indices that must not be test users (e.g. the test users of an outer split when
        drawing a validation split from its train matrix).

    Returns
    -------
    HoldoutSplit
        ``train`` and ``test`` with the input's shape and dtype, and the sorted test user rows.

    Raises
    ------
    ValueError
        If a parameter is out of range or more test users are asked for than are eligible.

    Examples
    --------
    >>> split = holdout_split(plays, test_users=10_000, holdout_fraction=0.2, seed=1)
    >>> (split.train + split.test != plays).nnz
    0
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    matrix = _canonical(matrix)
    n_users = matrix.shape[0]
    songs_per_user = np.diff(matrix.indptr).astype(np.int64)

    eligible_mask = songs_per_user >= max(int(min_songs), 2)
    if exclude_users is not None:
        excluded = np.asarray(exclude_users, dtype=np.int64)
        if excluded.size and (excluded.min() < 0 or excluded.max() >= n_users):
            raise ValueError(f"exclude_users must be row indices in [0, {n_users})")
        eligible_mask[excluded] = False
    eligible = np.flatnonzero(eligible_mask)

    if isinstance(test_users, (bool, np.bool_)):
        raise ValueError("test_users must be an int (a count) or a float (a share)")
    if isinstance(test_users, (int, np.integer)):
        n_test = int(test_users)
    else:
        if not 0.0 < float(test_users) <= 1.0:
            raise ValueError(f"test_users as a share must be in (0, 1], got {test_users}")
        n_test = int(round(float(test_users) * eligible.size))
    if not 0 <= n_test <= eligible.size:
        raise ValueError(
            f"asked for {n_test} test users but only {eligible.size} users have at least "
            f"{max(int(min_songs), 2)} songs (and are not excluded); lower test_users or min_songs"
        )

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=n_test, replace=False)).astype(np.int64)

    # Entries of the chosen users, row by row; shuffle within each row by sorting on
    # (local row + uniform noise) and hold out the first n_hold of each row's permutation.
    positions = _row_ranges(matrix.indptr, chosen)
    lengths = songs_per_user[chosen]
    local_row = np.repeat(np.arange(n_test, dtype=np.int64), lengths)
    order = np.argsort(local_row + rng.random(positions.size), kind="stable")
    row_start = np.cumsum(lengths) - lengths
    rank_in_row = np.empty(positions.size, dtype=np.int64)
    rank_in_row[order] = np.arange(positions.size, dtype=np.int64) - row_start[local_row[order]]
    n_hold = np.clip(np.rint(holdout_fraction * lengths).astype(np.int64), 1, lengths - 1)

    held = np.zeros(matrix.nnz, dtype=bool)
    held[positions[rank_in_row < n_hold[local_row]]] = True

    split = HoldoutSplit(
        train=_select(matrix, ~held), test=_select(matrix, held), test_users=chosen
    )
    logger.info(
        "holdout split: %d test users of %d eligible, %d of %d entries held out",
        n_test, eligible.size, int(held.sum()), matrix.nnz,
    )
    return split


def time_split(
    matrix: sp.spmatrix,
    first_played: np.ndarray,
    *,
    test_users: int | float = 0.1,
    holdout_fraction: float = 0.2,
    cutoff: int | None = None,
    min_songs: int = 5,
    seed: int = 0,
    exclude_users: np.ndarray | None = None,
) -> HoldoutSplit:
    """Hold out each test user's latest songs: the protocol real services use (what will they
    listen to next?), where :func:`holdout_split` draws songs at random.

    A song's time is when the user first played it (``first_played``, epoch seconds aligned with
    the stored pairs of ``matrix``, 0 when unknown: such a pair is never held out). With
    ``cutoff`` (epoch seconds) a test user's songs first played at or after it are held out;
    otherwise their latest ``holdout_fraction`` (rounded, at least 1, at least 1 kept). Test
    users are drawn at random (``seed``) among the users with at least ``max(min_songs, 2)``
    songs of known time and, with a cut-off, songs on both sides of it, never among
    ``exclude_users`` (row indices). ``ValueError`` when no user qualifies."""
    if cutoff is None and not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    matrix = _canonical(matrix)
    first = np.asarray(first_played, np.int64)
    if first.shape != (matrix.nnz,):
        raise ValueError("first_played must hold one time per stored pair of the matrix")
    n_users = matrix.shape[0]
    row_of = np.repeat(np.arange(n_users), np.diff(matrix.indptr))
    known = first > 0
    timed = np.bincount(row_of[known], minlength=n_users)
    eligible_mask = timed >= max(int(min_songs), 2)
    if cutoff is not None:
        after = np.bincount(row_of[known & (first >= cutoff)], minlength=n_users)
        before = np.diff(matrix.indptr) - after
        eligible_mask &= (after >= 1) & (before >= 1)
    if exclude_users is not None:
        eligible_mask[np.asarray(exclude_users, dtype=np.int64)] = False
    eligible = np.flatnonzero(eligible_mask)
    n_test = int(test_users) if isinstance(test_users, (int, np.integer)) and not isinstance(test_users, bool) \
        else int(round(float(test_users) * eligible.size))
    n_test = min(n_test, eligible.size)
    if n_test < 1:
        raise ValueError("no user has enough plays of known time (and, with a cut-off, plays on both sides "
                         "of it) for a time split")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=n_test, replace=False)).astype(np.int64)
    held = np.zeros(matrix.nnz, dtype=bool)
    for u in chosen:
        lo, hi = matrix.indptr[u], matrix.indptr[u + 1]
        t = first[lo:hi]
        if cutoff is not None:
            held[lo:hi] = (t > 0) & (t >= cutoff)
            continue
        timed_pos = np.flatnonzero(t > 0)
        n_hold = int(np.clip(np.rint(holdout_fraction * timed_pos.size), 1, (hi - lo) - 1))
        latest = timed_pos[np.lexsort((timed_pos, t[timed_pos]))][::-1][:n_hold]   # ties: the later column
        held[lo + latest] = True
    logger.info("time split: %d test users of %d eligible, %d of %d entries held out",
                n_test, eligible.size, int(held.sum()), matrix.nnz)
    return HoldoutSplit(train=_select(matrix, ~held), test=_select(matrix, held), test_users=chosen)


def draw_validation(matrix: sp.spmatrix, n_users: int, *, holdout_fraction: float, min_songs: int, seed: int,
                    first_played: np.ndarray | None = None,
                    exclude_users: np.ndarray | None = None) -> HoldoutSplit:
    """The validation split that settings are chosen on, drawn the way the test split it stands
    for is: ``n_users`` users (never ``exclude_users``) with a random ``holdout_fraction`` of their
    songs held out (:func:`holdout_split`) or, given ``first_played`` (one time per stored pair
    of ``matrix``, 0 when unknown), their latest songs (:func:`time_split`)."""
    if first_played is None:
        return holdout_split(matrix, test_users=n_users, holdout_fraction=holdout_fraction, min_songs=min_songs,
                             seed=seed, exclude_users=exclude_users)
    return time_split(matrix, first_played, test_users=n_users, holdout_fraction=holdout_fraction,
                      min_songs=min_songs, seed=seed, exclude_users=exclude_users)


def split_times(split: str, first_played: np.ndarray | None) -> np.ndarray | None:
    """The times a validation split of kind ``split`` (:data:`SPLITS`) is drawn by:
    ``first_played`` for ``"time"`` (``ValueError`` without any known time), ``None`` for
    ``"random"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "random":
        return None
    if first_played is None or not np.any(np.asarray(first_played) > 0):
        raise ValueError("a time split needs plays with times (listening events, not play counts alone)")
    return np.asarray(first_played, np.int64)


def times_matrix(matrix: sp.csr_matrix, first_played: np.ndarray) -> sp.csr_matrix:
    """``first_played`` (one time per stored pair of ``matrix``, 0 when unknown) as a CSR of
    ``matrix``'s structure holding each time plus one, so that no entry is 0: slice it as the
    matrix is sliced (a sample of users, of songs) and :func:`pair_times` reads the times of the
    slice back, aligned with its pairs."""
    m = sp.csr_matrix(matrix)
    return sp.csr_matrix((np.asarray(first_played, np.float64) + 1.0, m.indices, m.indptr), shape=m.shape)


def pair_times(times: sp.csr_matrix) -> np.ndarray:
    """The times a (sliced) :func:`times_matrix` holds, one per stored pair."""
    return (sp.csr_matrix(times).data - 1.0).astype(np.int64)


def validation_split(split: HoldoutSplit, **kwargs: Any) -> HoldoutSplit:
    """A holdout split of ``split.train`` whose test users are never ``split``'s test users.

    For tuning: the validation split sees only the training matrix of ``split`` (the held-out
    test songs are not in it), and none of ``split``'s test users is a validation user.

    Parameters
    ----------
    split : HoldoutSplit
        The outer (test) split.
    **kwargs
        Passed to :func:`holdout_split` (``test_users``, ``holdout_fraction``, ``min_songs``,
        ``seed``); ``exclude_users`` is merged with ``split.test_users``.

    Returns
    -------
    HoldoutSplit
        ``train`` + ``test`` equals ``split.train``.
    """
    exclude = split.test_users
    extra = kwargs.pop("exclude_users", None)
    if extra is not None:
        exclude = np.union1d(exclude, np.asarray(extra, dtype=np.int64))
    return holdout_split(split.train, exclude_users=exclude, **kwargs)


@dataclass(frozen=True)
class HoldoutConfig:
    """Settings for the hold-out protocol (``[evaluate]`` in a TOML config)."""

    test_users: float = 0.1       # share (< 1) or count (>= 1) of eligible users
    holdout_fraction: float = 0.2
    min_songs: int = 5
    max_test_users: int = 20_000  # evaluation cost cap on big matrices
    seed: int = 0
    batch_size: int = 512
    ks: tuple[int, ...] = (10, 50, 500)
    split: str = "random"         # "random" songs of each test user, or "time": their latest songs
    cutoff: str | None = None     # time split: an ISO date; songs first played from then on are held out

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if self.test_users <= 0:
            raise ValueError("test_users must be positive")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.cutoff is not None:
            cutoff_seconds(self.cutoff)

    @property
    def cutoff_ts(self) -> int | None:
        return None if self.cutoff is None else cutoff_seconds(self.cutoff)


#: The splits ``pmrs evaluate --holdout --split`` makes.
SPLITS = ("random", "time")


def cutoff_seconds(text: str) -> int:
    """An ISO 8601 date or time (UTC unless it names a zone) as epoch seconds; ``ValueError``."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cutoff must be an ISO 8601 date such as 2012-06-01, got {text!r}") from None
    return int((t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp())


def make_split(counts, cfg: HoldoutConfig, first_played: np.ndarray | None = None) -> HoldoutSplit:
    """The test split of ``counts`` under ``cfg`` (capped at ``max_test_users``): random songs of
    random users, or (``cfg.split == "time"``) each test user's latest songs by ``first_played``
    (:func:`time_split`; ``ValueError`` without times)."""
    if cfg.split == "time":
        if first_played is None or not np.any(np.asarray(first_played) > 0):
            raise ValueError("a time split needs plays with times (listening events, not play counts alone)")
        n_timed = int((np.diff(counts.indptr) >= max(cfg.min_songs, 2)).sum())
        n_test = int(round(cfg.test_users * n_timed)) if cfg.test_users < 1 else int(cfg.test_users)
        return time_split(counts, first_played, test_users=max(1, min(n_test, cfg.max_test_users)),
                          holdout_fraction=cfg.holdout_fraction, cutoff=cfg.cutoff_ts,
                          min_songs=cfg.min_songs, seed=cfg.seed)
    n_eligible = int((np.diff(counts.indptr) >= max(cfg.min_songs, 2)).sum())
    share = cfg.test_users < 1
    n_test = int(round(cfg.test_users * n_eligible)) if share else int(cfg.test_users)
    n_test = max(1, min(n_test, cfg.max_test_users, n_eligible))
    return holdout_split(counts, test_users=n_test, holdout_fraction=cfg.holdout_fraction,
                         min_songs=cfg.min_songs, seed=cfg.seed)
