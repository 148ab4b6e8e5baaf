"""Reference models for the evaluation reports: what a user would pick instead of PMRS.

``implicit``'s ALS, BPR, cosine and BM25 item-kNN, fitted on the raw play counts of the training
matrix (users x songs CSR) as a user of that library would call them, EASE (Steck 2019, closed
form, :mod:`pmrs.evaluation.ease`) on the binarized matrix, and popularity. Scores are read from
the fitted model the way its ``recommend`` computes them (inner products for the factor models,
the user's row times the item-item matrix for the neighbourhood models and EASE), so that PMRS's
metric code ranks every candidate song, ties and AUC included, exactly as it does for PMRS's
own models.

Settings: with a :class:`~pmrs.collaborative.selection.SelectConfig` that is enabled (PMRS's own
settings are then chosen on validation too), each model's settings are chosen from ``GRIDS`` on
the validation split PMRS's search draws from the same matrix (same users held out, same seed,
same metric; while that search runs on the whole matrix, not on a sample of its users), at most ``len(GRIDS[name])`` fits each, against PMRS's dozen WMF trials and ten
neighbour settings; otherwise every model is at its library's defaults (EASE at the lambda Steck
used on the MSD). A model that cannot be fitted (EASE over a catalog whose dense matrix exceeds
its memory budget) is skipped, with the reason.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from threadpoolctl import threadpool_limits

from ..collaborative.ease import DEFAULT_LAMBDA, LAMBDAS, EaseTooLarge, fit_ease
from .metrics import evaluate_scores, popularity_scores
from .split import draw_validation, split_times

log = logging.getLogger(__name__)

ScoresFn = Callable[[np.ndarray], np.ndarray]

#: Names of the reference models, in report order.
REFERENCE_MODELS = ("ease", "implicit-als", "implicit-bpr", "implicit-cosine", "implicit-bm25", "popularity")

#: Settings tried on validation, per model; the first of each is the library's default (``{}``).
GRIDS: dict[str, tuple[dict, ...]] = {
    "ease": ({},) + tuple({"regularization": lam} for lam in LAMBDAS if lam != DEFAULT_LAMBDA),
    "implicit-als": ({},) + tuple({"factors": f, "regularization": r, "alpha": a}
                                  for f in (64, 128) for r in (0.01, 1.0) for a in (1.0, 10.0)),
    "implicit-bpr": ({},) + tuple({"factors": f, "learning_rate": lr}
                                  for f in (64, 128) for lr in (0.01, 0.05)),
    "implicit-cosine": ({},) + tuple({"K": k} for k in (50, 100, 200, 500)),
    "implicit-bm25": ({},) + tuple({"K": k, "K1": k1} for k in (100, 500) for k1 in (0.6, 1.2))
    + ({"K": 100, "K1": 1.2, "B": 0.5},),
    "popularity": ({},),
}


def _implicit_model(name: str, seed: int, settings: dict):
    # implicit is imported above, before any BLAS limit, so that the limit reaches its BLAS.
    if name == "implicit-als":
        return AlternatingLeastSquares(random_state=seed, **settings)
    if name == "implicit-bpr":
        return BayesianPersonalizedRanking(random_state=seed, **settings)
    if name == "implicit-cosine":
        return CosineRecommender(**settings)
    if name == "implicit-bm25":
        return BM25Recommender(**settings)
    raise ValueError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")


@dataclass
class Fitted:
    """One fitted reference model: ``scores(user_rows)`` for rows of its training matrix and
    ``new_users(x)`` for listeners it never saw (``x``: their songs, ``(n, n_songs)`` CSR), or
    ``None`` where the model has no fold-in (implicit's BPR)."""

    model: object
    scores: ScoresFn
    new_users: Callable[[sp.csr_matrix], np.ndarray] | None


def _binary(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


def fit(name: str, train: sp.csr_matrix, seed: int = 0, settings: dict | None = None) -> Fitted:
    """Fit one reference model on ``train`` (users x songs play counts) with ``settings`` (keyword
    arguments of the model; ``None``: its defaults). Raises ``ValueError`` for an unknown name,
    :class:`~pmrs.evaluation.ease.EaseTooLarge` for EASE over a catalog too large."""
    settings = dict(settings or {})
    train = sp.csr_matrix(train, dtype=np.float32)
    if name == "popularity":
        pop = popularity_scores(train)
        return Fitted(None, lambda rows: np.broadcast_to(pop, (len(rows), pop.size)),
                      lambda x: np.broadcast_to(pop, (x.shape[0], pop.size)))
    if name == "ease":
        weights = fit_ease(train, **settings)
        x = _binary(train)
        return Fitted(weights, lambda rows: np.asarray(x[np.asarray(rows)] @ weights, np.float32),
                      lambda new: np.asarray(_binary(new) @ weights, np.float32))
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit's own item-kNN classes hand its fit a COO matrix and warn about it.
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model = _implicit_model(name, seed, settings)
        model.fit(train, show_progress=False)
    if hasattr(model, "similarity"):
        sim = model.similarity.tocsr()
        return Fitted(model, lambda rows: (train[np.asarray(rows)] @ sim).toarray().astype(np.float32),
                      lambda new: (sp.csr_matrix(new, dtype=np.float32) @ sim).toarray().astype(np.float32))
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    new_users = None
    if name == "implicit-als":
        def new_users(new: sp.csr_matrix) -> np.ndarray:
            new = sp.csr_matrix(new, dtype=np.float32)
            with threadpool_limits(1, "blas"):
                factors = model.recalculate_user(np.arange(new.shape[0]), new)
            return np.asarray(factors, np.float32).reshape(new.shape[0], -1) @ items.T
    return Fitted(model, lambda rows: users[np.asarray(rows)] @ items.T, new_users)


def fit_reference(name: str, train: sp.csr_matrix, seed: int = 0, settings: dict | None = None):
    """Fit one reference model on ``train`` (users x songs play counts); returns ``(model, scores_fn)``.

    ``scores_fn(user_rows) -> (len(user_rows), n_songs) float32`` as the model's ``recommend``
    scores them (played songs are masked by the evaluation, not here).
    """
    f = fit(name, train, seed, settings)
    return f.model, f.scores


@dataclass
class Reference:
    """A reference model as a report shows it: the fitted model (``None`` when skipped), its
    settings, whether they were chosen on validation, the validation trials, the fit's seconds
    and, when skipped, why."""

    name: str
    fitted: Fitted | None
    settings: dict
    chosen: bool
    seconds: float
    trials: list = field(default_factory=list)
    skipped: str | None = None

    def describe(self) -> dict:
        return {"settings": self.settings, "chosen_on_validation": self.chosen, "seconds": self.seconds,
                "trials": self.trials, "skipped": self.skipped}


def validation_split(train: sp.csr_matrix, select, first_played: np.ndarray | None = None):
    """The validation split PMRS's settings search draws from ``train`` when it searches the
    whole matrix (:func:`pmrs.collaborative.selection.select_settings`): the same users and songs
    held out (their latest by ``first_played``, aligned with ``train``'s pairs, when
    ``select.split`` is ``"time"``)."""
    eligible = int((np.diff(sp.csr_matrix(train).indptr) >= max(select.min_songs, 2)).sum())
    n_val = int(min(max(1, round(select.validation_users * eligible)), select.max_validation_users, eligible))
    if n_val < 1:
        raise ValueError("no user has enough songs to draw a validation split from")
    return draw_validation(train, n_val, holdout_fraction=select.holdout_fraction, min_songs=select.min_songs,
                           seed=select.seed + 1, first_played=split_times(select.split, first_played))


def _score(fn: ScoresFn, val, metric: str) -> dict:
    terms = metric.split("+")
    ks = sorted({50, 500} | {int(t.split("@")[1]) for t in terms if "@" in t})
    m = evaluate_scores(fn, val, ks=ks, show_progress=False)
    m[metric] = sum(m[t] for t in terms)
    return {k: round(float(m[k]), 5) for k in dict.fromkeys(("map@500", "recall@50", metric))}


def references(train: sp.csr_matrix, names=REFERENCE_MODELS, seed: int = 0, select=None,
               first_played: np.ndarray | None = None) -> dict[str, Reference]:
    """Each reference model of ``names`` fitted on ``train``; with ``select`` enabled, at the
    settings of ``GRIDS[name]`` that score best on the validation split (:func:`validation_split`,
    by ``select.metric``; ``first_played`` for a time split), else at its defaults."""
    tune = select is not None and select.enabled
    val = validation_split(train, select, first_played) if tune else None
    out = {}
    for name in names:
        if name not in GRIDS:
            raise ValueError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")
        t0 = time.perf_counter()
        trials: list[dict] = []
        try:
            best = GRIDS[name][0]
            if tune and len(GRIDS[name]) > 1:
                best_score = -1.0
                for settings in GRIDS[name]:
                    m = _score(fit(name, val.train, seed, settings).scores, val, select.metric)
                    trials.append({"settings": settings, **m})
                    if np.nan_to_num(m[select.metric], nan=-1.0) > best_score:
                        best_score, best = np.nan_to_num(m[select.metric], nan=-1.0), settings
            fitted = fit(name, train, seed, best)
        except EaseTooLarge as exc:
            out[name] = Reference(name, None, {}, False, 0.0, trials, skipped=str(exc))
            log.warning("reference %s skipped: %s", name, exc)
            continue
        out[name] = Reference(name, fitted, dict(best), bool(trials), round(time.perf_counter() - t0, 3), trials)
        log.info("reference %s %s in %.2fs", name, best or "at defaults", out[name].seconds)
    return out


def reference_scores(train: sp.csr_matrix, names=REFERENCE_MODELS, seed: int = 0) -> dict[str, tuple[ScoresFn, float]]:
    """``{name: (scores_fn, fit_seconds)}`` for each reference model at its defaults, fitted on
    ``train`` (skipped models left out)."""
    return {name: (r.fitted.scores, r.seconds) for name, r in references(train, names, seed).items()
            if r.fitted is not None}


def settings_text(ref: dict) -> str:
    """A reference's settings as the reports print them (``ref``: :meth:`Reference.describe`)."""
    if ref.get("skipped"):
        return f"skipped: {ref['skipped']}"
    given = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in ref["settings"].items())
    if not ref["trials"]:
        return f"{given} (default)" if given else "library defaults"
    return f"{given or 'library defaults'} (chosen on validation of {len(ref['trials'])})"
