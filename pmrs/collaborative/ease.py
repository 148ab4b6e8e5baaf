"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data") in closed form: a
reference model of the evaluation reports and a similarity of the neighbourhood model
(``pmrs.collaborative.neighbours``, ``similarity = "ease"``).

An item-item weight matrix ``B`` minimises ``||X - X B||^2 + lambda ||B||^2`` subject to
``diag(B) = 0``, over the binarized users x songs matrix ``X``. Its solution is
``P = (X^T X + lambda I)^-1`` and ``B = I - P diagMat(1 / diag(P))``: off the diagonal,
``B_ij = -P_ij / P_jj``. A listener's scores are ``x B``.

The fit needs one dense ``(n_songs, n_songs)`` matrix: the Gram matrix is formed in float32,
factorised and inverted in place (LAPACK's Cholesky ``potrf`` and ``potri``) and turned into
``B`` in place, so the peak is that matrix plus a row block. ``max_gib`` is the budget for it;
a catalog whose matrix would exceed it is not fitted (:class:`EaseTooLarge` says why), and the
reports say so. At the Liang et al. MSD shape (41,140 songs) the matrix is 6.3 GiB, inside the
default budget of 8 GiB, a third of the 24 GB the project may assume.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..errors import InvalidArgument

log = logging.getLogger(__name__)

#: Memory budget of the dense song x song matrix, GiB.
MAX_GIB = 8.0
#: Steck's lambda on the MSD: EASE's setting when none is chosen on validation.
DEFAULT_LAMBDA = 500.0
#: Regularization values tried on validation (Steck used 500 on the MSD, 200 to 3000 elsewhere).
LAMBDAS = (10.0, 50.0, 200.0, 500.0, 2000.0)
#: Rows of ``P`` handled at once when it is made symmetric and turned into ``B``.
_BLOCK = 2048


class EaseTooLarge(InvalidArgument):
    """The catalog's dense song x song matrix would exceed the memory budget."""


def dense_gib(n_songs: int) -> float:
    """GiB of one ``(n_songs, n_songs)`` float32 matrix."""
    return n_songs * n_songs * 4 / 2 ** 30


def check_fits(n_songs: int, max_gib: float | None = None) -> None:
    """Raise :class:`EaseTooLarge` when EASE's matrix for ``n_songs`` exceeds ``max_gib``."""
    need = dense_gib(n_songs)
    max_gib = MAX_GIB if max_gib is None else max_gib
    if need > max_gib:
        raise EaseTooLarge(f"EASE needs a dense {n_songs:,} x {n_songs:,} float32 matrix ({need:.1f} GiB), "
                           f"over the budget of {max_gib:g} GiB")


def fit_ease(train: sp.spmatrix, regularization: float = DEFAULT_LAMBDA, max_gib: float | None = None) -> np.ndarray:
    """EASE's weights for ``train`` (users x songs; every stored entry counts as 1).

    Returns ``B``, ``(n_songs, n_songs)`` float32 with a zero diagonal; scores are ``x @ B``.
    Raises :class:`EaseTooLarge` when ``B`` would exceed ``max_gib`` GiB (default
    :data:`MAX_GIB`), ``InvalidArgument``
    for a regularization that is not positive.
    """
    if not regularization > 0:
        raise InvalidArgument(f"EASE's regularization must be positive, got {regularization}")
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    n = x.shape[1]
    check_fits(n, MAX_GIB if max_gib is None else max_gib)
    g = np.asfortranarray((x.T @ x).toarray(), dtype=np.float32)   # symmetric: C or F alike
    g[np.diag_indices(n)] += np.float32(regularization)
    # in place: the Cholesky factor, then the inverse, in the upper triangle (Fortran order)
    c, info = lapack.spotrf(g, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise InvalidArgument(f"EASE: X^T X + lambda I is not positive definite (potrf info {info})")
    p, info = lapack.spotri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise InvalidArgument(f"EASE: the inverse failed (potri info {info})")
    p = p.T   # C order, P's lower triangle filled (the transpose of the upper)
    for lo in range(0, n, _BLOCK):   # fill the upper triangle from the lower, block by block
        hi = min(n, lo + _BLOCK)
        rows = p[lo:hi]
        below = p[hi:, lo:hi]
        rows[:, hi:] = below.T
        block = rows[:, lo:hi]
        block[:] = np.tril(block) + np.tril(block, -1).T
    diag = np.diag(p).copy()
    p /= -diag[None, :]
    p[np.diag_indices(n)] = 0.0
    return p


def ease_scores(train: sp.spmatrix, weights: np.ndarray):
    """``scores_fn(user_rows) -> (len(user_rows), n_songs) float32``: the binarized rows of
    ``train`` times EASE's ``weights``."""
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return lambda rows: np.asarray(x[np.asarray(rows)] @ weights, np.float32)
