"""Top-k by inner product over factors in memory, and a user's most played songs: the small
helpers the demo and the evaluation use on a model run (serving uses ``pmrs.Recommender``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k(user_factor: np.ndarray, song_factors: np.ndarray, k: int,
              exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` songs with the highest ``x_u . y_i``, best first, skipping ``exclude``.

    Returns ``(song_indices, scores)``, each ``(min(k, candidates),)``.
    """
    scores = song_factors @ np.asarray(user_factor, dtype=np.float32)
    if exclude is not None and len(exclude):
        scores[np.asarray(exclude)] = -np.inf
    n = int(min(k, np.isfinite(scores).sum()))
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.astype(np.int64), scores[top]


def most_played(counts: sp.csr_matrix, user_row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A user's ``k`` most played songs: ``(song_indices, play_counts)``, most played first."""
    start, stop = counts.indptr[user_row], counts.indptr[user_row + 1]
    songs, plays = counts.indices[start:stop], counts.data[start:stop]
    order = np.argsort(-plays, kind="stable")[:k]
    return songs[order].astype(np.int64), plays[order]
