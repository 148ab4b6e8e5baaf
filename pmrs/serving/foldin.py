"""Fold-in: the WMF vector of a listener the model was not trained on, from the songs they played.

One exact ALS half-step against fixed song factors (implicit's ``recalculate_user``), with the
run's alpha, eps and regularization. A song nobody has played has no WMF factors; when another
source in the WMF space has a vector for it (the acoustic source's CNN-predicted factors l'_j,
trained to live in the same space), that vector stands in for y_j, as one more column of the
solve: it adds ``c * l' l'^T`` (it is not in ``Y^T Y``) where a played song adds
``(c - 1) y y^T``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
from scipy.linalg.lapack import dposv

from ..collaborative.wmf import WMFConfig


class Vectors(Protocol):
    """A source's vectors by song row: ``position(rows)`` gives each row's index into ``vectors``
    (-1 where the source has none)."""

    vectors: np.ndarray

    def position(self, song_rows: np.ndarray) -> np.ndarray: ...


class FoldIn:
    """Folds listeners into the WMF space of ``primary`` (the collaborative source's song factors),
    with ``stand_ins`` (other WMF-space sources, in order) for songs ``primary`` lacks. ``Y^T Y``
    is computed once, on first use. Thread-safe."""

    def __init__(self, cfg: WMFConfig, primary: Vectors, stand_ins: Sequence[Vectors] = ()):
        self.cfg = cfg
        self.primary = primary
        self.stand_ins = list(stand_ins)
        self._gram: np.ndarray | None = None
        self._base: np.ndarray | None = None    # Y^T Y + regularization I, the part every A shares
        self._lock = threading.Lock()

    def gram(self) -> np.ndarray:
        """``Y^T Y`` ``(k, k)`` float64 of the primary song factors."""
        with self._lock:
            if self._gram is None:
                y = np.asarray(self.primary.vectors, dtype=np.float32)
                self._gram = (y.T @ y).astype(np.float64)  # float32 BLAS, as implicit computes it
            return self._gram

    def base(self) -> np.ndarray:
        """``Y^T Y + regularization I`` ``(k, k)`` float64, computed once."""
        base = self._base
        if base is None:
            base = self._base = self.gram() + self.cfg.regularization * np.eye(len(self.gram()))
        return base

    def __call__(self, song_rows: Sequence[int] | np.ndarray, counts: Sequence[float] | np.ndarray | None = None,
                 extra: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """``(k,)`` float32 factors of a user who played ``song_rows`` (``counts`` times each;
        ``None``: once). For songs with WMF factors this equals (to float tolerance)
        ``pmrs.collaborative.wmf.fold_in`` on a one-row count matrix. ``extra``: ``(rows,
        vectors)`` stand-ins for rows no source holds (songs added live). Rows with no usable
        vector are ignored; repeated rows count once without ``counts`` and add their counts with
        them; no usable row gives zeros."""
        s = self.system(song_rows, counts, extra)
        if s is None:
            return np.zeros(self.primary.vectors.shape[1], dtype=np.float32)
        return np.linalg.solve(s.a, s.vectors.T @ s.confidence).astype(np.float32)

    def contributions(self, target: np.ndarray, song_rows, counts=None, extra=None) -> tuple[np.ndarray, np.ndarray]:
        """Why a song scores what it does for this listener: the score ``target . x`` of a song
        whose vector is ``target`` ``(k,)`` (or several, ``(n, k)``), with ``x`` the fold-in of
        the listener's songs, is a sum over those songs, ``c_j * target' A^-1 y_j`` (the ALS
        solve is linear in its right-hand side; implicit's ``explain`` computes the same).
        Returns ``(rows, contributions)``: the song rows that have a vector, and ``(len(rows),)``
        (or ``(n, len(rows))``) float64 terms that add up to the score."""
        s = self.system(song_rows, counts, extra)
        t = np.atleast_2d(np.asarray(target, np.float64))
        if s is None:
            return np.zeros(0, np.int64), np.zeros(0) if np.ndim(target) == 1 else np.zeros((len(t), 0))
        weights = _spd_solve(s.a, t.T).T @ s.vectors.T * s.confidence   # (n, rows)
        return s.rows, weights[0] if np.ndim(target) == 1 else weights

    def system(self, song_rows, counts=None, extra=None) -> "System | None":
        """The fold-in's linear system for a listener (``None`` when no song has a vector): the
        rows used, their vectors ``(n, k)``, confidences ``(n,)`` and the matrix ``A`` ``(k, k)``;
        ``x = A^-1 (vectors' confidence)``."""
        rows = np.asarray(song_rows, dtype=np.int64).reshape(-1)
        ascending = rows.size < 2 or bool((rows[1:] > rows[:-1]).all())   # (a user's played songs)
        if counts is None:
            rows = rows if ascending else np.unique(rows)
            cnt = np.ones(len(rows))
        else:
            cnt = np.asarray(counts, np.float64).reshape(-1)
            if len(cnt) != len(rows):
                raise ValueError("counts must be aligned with song_rows")
            if not ascending:
                rows, inv = np.unique(rows, return_inverse=True)
                cnt = np.bincount(inv, weights=cnt, minlength=len(rows))
        ix = self.primary
        k = ix.vectors.shape[1]
        pos = ix.position(rows)
        hit = pos >= 0
        y = np.asarray(ix.vectors[pos[hit]], dtype=np.float64).reshape(-1, k)
        y_rows, cy = rows[hit], cnt[hit]
        cfg = self.cfg
        c_y = 1.0 + cfg.alpha * np.log1p(cy / cfg.eps)       # confidences, as pmrs.collaborative.wmf.confidence
        if hit.all() and len(y):   # (the usual case: every song has WMF factors)
            return System(rows=y_rows, vectors=y, confidence=c_y, a=self.base() + (y.T * (c_y - 1.0)) @ y)
        cold_rows, cold_cnt = rows[~hit], cnt[~hit]
        colds, ccs, crs = [], [], []
        for sx in self.stand_ins:
            if not len(cold_rows):
                break
            spos = sx.position(cold_rows)
            have = spos >= 0
            colds.append(np.asarray(sx.vectors[spos[have]], dtype=np.float64).reshape(-1, k))
            ccs.append(cold_cnt[have])
            crs.append(cold_rows[have])
            cold_rows, cold_cnt = cold_rows[~have], cold_cnt[~have]
        if extra is not None and len(cold_rows):
            xrows, xvec = extra
            xpos = np.searchsorted(xrows, cold_rows)
            xpos = np.minimum(xpos, max(len(xrows) - 1, 0))
            have = (np.asarray(xrows)[xpos] == cold_rows) if len(xrows) else np.zeros(len(cold_rows), bool)
            colds.append(np.asarray(xvec, np.float64)[xpos[have]].reshape(-1, k))
            ccs.append(cold_cnt[have])
            crs.append(cold_rows[have])
        cold = np.concatenate(colds) if colds else np.zeros((0, k))
        cc = np.concatenate(ccs) if ccs else np.zeros(0)
        if not len(y) and not len(cold):
            return None
        c_c = 1.0 + cfg.alpha * np.log1p(cc / cfg.eps)
        a = self.base() + (y.T * (c_y - 1.0)) @ y + (cold.T * c_c) @ cold
        return System(rows=np.concatenate([y_rows, *crs]).astype(np.int64), vectors=np.concatenate([y, cold]),
                      confidence=np.concatenate([c_y, c_c]), a=a)


def _spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A^-1 b`` for the symmetric positive definite ``A`` of a fold-in (LAPACK's Cholesky
    solve, a third of ``np.linalg.solve``'s time at 64 factors; the LU solve if ``A`` is not
    numerically positive definite)."""
    _, x, info = dposv(a, b, lower=0)
    return x if info == 0 else np.linalg.solve(a, b)


@dataclass(frozen=True)
class System:
    """A listener's fold-in system (:meth:`FoldIn.system`)."""

    rows: np.ndarray
    vectors: np.ndarray
    confidence: np.ndarray
    a: np.ndarray
