"""The bag-of-features baseline of van den Oord et al. (2013): ridge regression from per-clip MFCC
summary vectors to WMF song factors.

Features are standardised (training mean and standard deviation per column; constant columns are
left at scale 1), targets are centred (the intercept is their mean), and
``W = (Xs^T Xs + alpha I)^-1 Xs^T (Y - mean)`` is solved in closed form in float64. ``alpha`` is
chosen from a grid by the squared error (summed over factor dimensions, averaged over songs, the
CNN's objective) on a seeded validation share of the rows; the model is then refitted on all rows
with that alpha. One eigendecomposition of the Gram matrix serves the whole grid.

Saved as a directory of ``.npy`` files (``feature_mean``, ``feature_scale``, ``weights``
``(d, k)``, ``intercept`` ``(k,)``) and ``ridge.json`` (alpha, the grid and its validation
losses); nothing is pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import load_npy, read_json, save_npy, staged_dir, write_json

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in 10.0 ** np.arange(-2, 6))


@dataclass
class RidgeModel:
    """``predict(X) = ((X - feature_mean) / feature_scale) @ weights + intercept``."""

    feature_mean: np.ndarray  # (d,) float64
    feature_scale: np.ndarray  # (d,) float64
    weights: np.ndarray  # (d, k) float64
    intercept: np.ndarray  # (k,) float64
    alpha: float
    validation: dict = field(default_factory=dict)  # alphas, val_losses, val_loss_mean_predictor

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted factors ``(n, k)`` float32 for features ``X`` ``(n, d)``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_mean):
            raise ValueError(f"expected features (n, {len(self.feature_mean)}), got {X.shape}")
        Xs = (X - self.feature_mean) / self.feature_scale
        return (Xs @ self.weights + self.intercept).astype(np.float32)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write a new directory atomically (``.npy`` + ``ridge.json``)."""
        with staged_dir(directory) as tmp:
            save_npy(tmp / "feature_mean.npy", self.feature_mean)
            save_npy(tmp / "feature_scale.npy", self.feature_scale)
            save_npy(tmp / "weights.npy", self.weights)
            save_npy(tmp / "intercept.npy", self.intercept)
            write_json(tmp / "ridge.json", {"alpha": self.alpha, "validation": self.validation})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "RidgeModel":
        d = Path(directory)
        meta = read_json(d / "ridge.json")
        return cls(feature_mean=load_npy(d / "feature_mean.npy"),
                   feature_scale=load_npy(d / "feature_scale.npy"),
                   weights=load_npy(d / "weights.npy"), intercept=load_npy(d / "intercept.npy"),
                   alpha=float(meta["alpha"]), validation=meta.get("validation", {}))


class _Solver:
    """Standardisation and the Gram eigendecomposition of one training set, for many alphas."""

    def __init__(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.mean = X.mean(0)
        std = X.std(0)
        self.scale = np.where(std > 1e-12, std, 1.0)
        Xs = (X - self.mean) / self.scale
        self.intercept = Y.mean(0)
        self.evals, self.evecs = np.linalg.eigh(Xs.T @ Xs)
        self.evals = np.maximum(self.evals, 0.0)
        self.proj = self.evecs.T @ (Xs.T @ (Y - self.intercept))  # (d, k)

    def weights(self, alpha: float) -> np.ndarray:
        denom = self.evals + alpha
        tiny = 1e-12 * max(float(self.evals.max(initial=0.0)), 1.0)  # alpha 0: pseudo-inverse
        inv = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > tiny)
        return self.evecs @ (self.proj * inv[:, None])

    def predict(self, X: np.ndarray, W: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ W + self.intercept


def fit_ridge(X: np.ndarray, Y: np.ndarray, alphas: tuple[float, ...] = DEFAULT_ALPHAS,
              validation_share: float = 0.2, seed: int = 0) -> RidgeModel:
    """Ridge regression from features ``X`` ``(n, d)`` to factors ``Y`` ``(n, k)``.

    ``alpha`` (the penalty on ``||W||^2`` with standardised features) is picked from ``alphas`` on
    a seeded ``validation_share`` of the rows (smallest alpha on ties), then the model is refitted
    on all rows. With one alpha or ``validation_share`` 0 there is no search.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"need X (n, d) and Y (n, k) with the same n; got {X.shape}, {Y.shape}")
    if len(X) < 2:
        raise ValueError("need at least 2 rows")
    alphas = tuple(sorted(float(a) for a in alphas))
    if not alphas or alphas[0] < 0:
        raise ValueError("alphas must be a non-empty grid of values >= 0")
    if not 0 <= validation_share < 1:
        raise ValueError("validation_share must be in [0, 1)")

    validation: dict = {"alphas": list(alphas)}
    alpha = alphas[0]
    n_val = min(max(round(validation_share * len(X)), 1), len(X) - 1) if validation_share else 0
    if len(alphas) > 1 and n_val:
        order = np.random.default_rng(seed).permutation(len(X))
        val, train = order[:n_val], order[n_val:]
        solver = _Solver(X[train], Y[train])
        losses = [float(((solver.predict(X[val], solver.weights(a)) - Y[val]) ** 2).sum(1).mean())
                  for a in alphas]
        alpha = alphas[int(np.argmin(losses))]
        validation.update({
            "val_losses": losses, "n_val": int(n_val),
            "val_loss_mean_predictor": float(((Y[val] - Y[train].mean(0)) ** 2).sum(1).mean())})
    solver = _Solver(X, Y)
    return RidgeModel(feature_mean=solver.mean, feature_scale=solver.scale,
                      weights=solver.weights(alpha), intercept=solver.intercept, alpha=alpha,
                      validation=validation)
