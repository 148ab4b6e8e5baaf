"""Reference models for the hold-out report: what a user would pick instead of PMRS.

Each is the ``implicit`` class at its own defaults, fitted on the raw play counts of the split's
training matrix (users x songs CSR), as a user of that library would call it, plus popularity.
Scores are read from the fitted model the way its ``recommend`` computes them (inner products for
the factor models, the user's row times the item-item similarity for the neighbourhood models),
so that PMRS's metric code ranks every candidate song, ties and AUC included, exactly as it
does for PMRS's own models.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from threadpoolctl import threadpool_limits

from .metrics import popularity_scores

log = logging.getLogger(__name__)

ScoresFn = Callable[[np.ndarray], np.ndarray]

#: Names of the reference models, in report order.
REFERENCE_MODELS = ("implicit-als", "implicit-bpr", "implicit-cosine", "implicit-bm25", "popularity")


def _implicit_model(name: str, seed: int):
    # implicit is imported above, before any BLAS limit, so that the limit reaches its BLAS.
    if name == "implicit-als":
        return AlternatingLeastSquares(random_state=seed)
    if name == "implicit-bpr":
        return BayesianPersonalizedRanking(random_state=seed)
    if name == "implicit-cosine":
        return CosineRecommender()
    if name == "implicit-bm25":
        return BM25Recommender()
    raise ValueError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")


def fit_reference(name: str, train: sp.csr_matrix, seed: int = 0):
    """Fit one reference model on ``train`` (users x songs play counts); returns ``(model, scores_fn)``.

    ``scores_fn(user_rows) -> (len(user_rows), n_songs) float32`` as the model's ``recommend``
    scores them (played songs are masked by the evaluation, not here).
    """
    train = sp.csr_matrix(train, dtype=np.float32)
    if name == "popularity":
        pop = popularity_scores(train)
        return None, lambda rows: np.broadcast_to(pop, (len(rows), pop.size))
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit's own item-kNN classes hand its fit a COO matrix and warn about it.
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model = _implicit_model(name, seed)
        model.fit(train, show_progress=False)
    if hasattr(model, "similarity"):
        sim = model.similarity.tocsr()
        return model, lambda rows: (train[np.asarray(rows)] @ sim).toarray().astype(np.float32)
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return model, lambda rows: users[np.asarray(rows)] @ items.T


def reference_scores(train: sp.csr_matrix, names=REFERENCE_MODELS, seed: int = 0) -> dict[str, tuple[ScoresFn, float]]:
    """``{name: (scores_fn, fit_seconds)}`` for each reference model, fitted on ``train``."""
    out = {}
    for name in names:
        t0 = time.perf_counter()
        _, fn = fit_reference(name, train, seed)
        out[name] = (fn, round(time.perf_counter() - t0, 3))
        log.info("reference %s fitted in %.2fs", name, out[name][1])
    return out
