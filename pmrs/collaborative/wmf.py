"""Weighted matrix factorization (Hu, Koren & Volinsky 2008) of play counts with ``implicit``'s ALS.

Preference p_ui = 1[r_ui > 0]; confidence c_ui = 1 + alpha * log(1 + r_ui / eps). ``implicit``
reads each stored value as the confidence of that pair (unstored pairs: p = 0, c = 1) after
multiplying it by its own ``alpha``, so PMRS stores the full confidence and passes ``alpha=1``.

A trained run lives in ``models/wmf/<run>/``: ``user_factors.npy`` ``(n_users, factors)``,
``song_factors.npy`` ``(n_songs, factors)`` (float32), ``user_ids.npy``/``song_ids.npy`` naming
their rows, ``config.json`` (the effective settings) and ``train_log.json`` (per-iteration times).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from ..artifacts import load_npy, read_json, save_npy, staged_dir, write_json

log = logging.getLogger(__name__)

WMF_DIR = Path("models") / "wmf"


@dataclass(frozen=True)
class WMFConfig:
    """Settings for ``pmrs train-wmf`` (``[wmf]`` in a TOML config)."""

    factors: int = 64
    alpha: float = 2.0
    eps: float = 0.1
    regularization: float = 0.01
    iterations: int = 15
    seed: int = 0
    use_cg: bool = True
    threads: int = 0  # 0: every core
    calculate_loss: bool = False
    half_life_days: float = 0.0  # a play's weight halves every this many days of age (0: no decay)

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1:
            raise ValueError("factors and iterations must be at least 1")
        if self.half_life_days < 0:
            raise ValueError("half_life_days must be >= 0 (0: no decay)")
        if self.alpha < 0 or self.eps <= 0 or self.regularization < 0:
            raise ValueError("need alpha >= 0, eps > 0 and regularization >= 0")


def play_ages(matrix: sp.csr_matrix, last_played: np.ndarray | None) -> sp.csr_matrix | None:
    """Each stored pair's age in days at the latest play of the data (so the same data give the
    same model whenever it is trained), as a CSR of ``matrix``'s structure: ``age + 1`` where the
    last play is known, ``-1`` where it is not; ``None`` without time."""
    if last_played is None or not np.any(last_played > 0):
        return None
    last = np.asarray(last_played, np.int64)
    now = int(last.max())
    data = np.where(last > 0, (now - last) / 86400.0 + 1.0, -1.0).astype(np.float32)
    m = sp.csr_matrix(matrix)
    return sp.csr_matrix((data, m.indices, m.indptr), shape=m.shape)


def decayed(counts: sp.csr_matrix, ages: sp.csr_matrix | None, half_life_days: float) -> sp.csr_matrix:
    """Play counts weighted by ``0.5 ** (age / half_life_days)`` (:func:`play_ages`; a pair of
    unknown time keeps its count); ``counts`` as it is without decay or without ages. ``ages``
    may cover more pairs than ``counts`` (a split's training part of the whole matrix)."""
    if not half_life_days or ages is None:
        return counts
    w = ages.copy()
    w.data = np.where(w.data < 0, 1.0, 0.5 ** ((w.data - 1.0) / half_life_days)).astype(np.float32)
    out = sp.csr_matrix(counts, dtype=np.float32).multiply(w).tocsr()
    out.eliminate_zeros()
    return out


def confidence(counts: sp.csr_matrix, alpha: float, eps: float) -> sp.csr_matrix:
    """Log confidence ``1 + alpha * log(1 + r / eps)`` of every stored play count, float32 CSR."""
    c = counts.tocsr(copy=True).astype(np.float32)
    c.data = (1.0 + alpha * np.log1p(c.data / np.float32(eps))).astype(np.float32)
    return c


def _als(cfg: WMFConfig):
    """implicit's CPU ALS for ``cfg``; call inside ``threadpool_limits(1, "blas")``."""
    return AlternatingLeastSquares(
        factors=cfg.factors, regularization=cfg.regularization, alpha=1.0, dtype=np.float32,
        use_cg=cfg.use_cg, iterations=cfg.iterations, calculate_training_loss=cfg.calculate_loss,
        num_threads=cfg.threads, random_state=cfg.seed)


@dataclass
class WMFModel:
    """User and song factors; scores are inner products ``x_u . y_i``."""

    user_factors: np.ndarray  # (n_users, factors) float32
    song_factors: np.ndarray  # (n_songs, factors) float32
    config: WMFConfig = field(default_factory=WMFConfig)
    log: list[dict] = field(default_factory=list)

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        """Dense scores ``(len(user_rows), n_songs)`` float32 for a batch of users."""
        return self.user_factors[np.asarray(user_rows)] @ self.song_factors.T

    def fold_in(self, counts: sp.csr_matrix) -> np.ndarray:
        """Factors for users not in the model from their play counts ``(n, n_songs)``: one exact
        ALS half-step against the fixed song factors. Returns ``(n, factors)`` float32."""
        return fold_in(counts, self.song_factors, self.config)


def fold_in(counts: sp.csr_matrix, song_factors: np.ndarray, cfg: WMFConfig) -> np.ndarray:
    """``x_u = (Y^T C_u Y + lambda I)^-1 Y^T C_u p(u)`` for each row of ``counts``, with implicit's
    exact (Cholesky) solver. ``counts``: ``(n, n_songs)`` play counts; returns ``(n, factors)``."""
    counts = sp.csr_matrix(counts)
    if counts.shape[1] != song_factors.shape[0]:
        raise ValueError(f"counts have {counts.shape[1]} songs, the model {song_factors.shape[0]}")
    conf = confidence(counts, cfg.alpha, cfg.eps)
    with threadpool_limits(1, "blas"):
        model = _als(replace(cfg, factors=song_factors.shape[1], use_cg=False))
        model.item_factors = np.ascontiguousarray(song_factors, dtype=np.float32)
        return model.recalculate_user(np.arange(counts.shape[0]), conf)


def train_wmf(counts: sp.csr_matrix, cfg: WMFConfig, show_progress: bool | None = None,
              after_iteration: Callable[[int, "WMFModel"], None] | None = None) -> WMFModel:
    """Fit WMF to a users x songs play-count matrix: one progress bar for the fit (on a terminal
    by default); per-iteration times go to ``model.log`` and the debug log.

    ``after_iteration(n, model)``, if given, is called after iteration ``n`` (1-based) with the
    factors so far (views: copy what must outlive the call)."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    conf = confidence(counts, cfg.alpha, cfg.eps)
    history: list[dict] = []

    def on_iteration(iteration: int, elapsed: float, loss) -> None:
        history.append({"iteration": iteration + 1, "seconds": round(elapsed, 4),
                        **({"loss": float(loss)} if loss is not None else {})})
        log.debug("iteration %d: %.2fs%s", iteration + 1, elapsed,
                  f", loss {loss:.5f}" if loss is not None else "")
        if after_iteration is not None:
            after_iteration(iteration + 1, WMFModel(user_factors=model.user_factors,
                                                    song_factors=model.item_factors, config=cfg))

    # implicit parallelises over users itself; a multithreaded BLAS underneath only contends.
    with threadpool_limits(1, "blas"):
        model = _als(cfg)
        model.fit(conf, show_progress=show_progress, callback=on_iteration)
    return WMFModel(user_factors=np.ascontiguousarray(model.user_factors),
                    song_factors=np.ascontiguousarray(model.item_factors), config=cfg, log=history)


def save_run(model: WMFModel, run_dir: str | os.PathLike, user_ids: np.ndarray, song_ids: np.ndarray,
             extra: dict | None = None, config_extra: dict | None = None) -> Path:
    """Write a run directory atomically (assembled under a temporary name, then renamed).

    ``config_extra`` goes into ``config.json`` beside the effective settings (e.g. how they were
    chosen); ``extra`` into ``train_log.json``."""
    with staged_dir(run_dir) as tmp:
        save_npy(tmp / "user_factors.npy", model.user_factors)
        save_npy(tmp / "song_factors.npy", model.song_factors)
        save_npy(tmp / "user_ids.npy", user_ids)
        save_npy(tmp / "song_ids.npy", song_ids)
        write_json(tmp / "config.json", {**asdict(model.config), **(config_extra or {})})
        write_json(tmp / "train_log.json", {"iterations": model.log, **(extra or {})})
    return Path(run_dir)


def load_run(run_dir: str | os.PathLike, mmap: bool = False) -> tuple[WMFModel, np.ndarray, np.ndarray]:
    """Load ``(model, user_ids, song_ids)`` from a run directory (never unpickles)."""
    d = Path(run_dir)
    names = {f.name for f in fields(WMFConfig)}
    cfg = WMFConfig(**{k: v for k, v in read_json(d / "config.json").items() if k in names})
    model = WMFModel(user_factors=load_npy(d / "user_factors.npy", mmap=mmap),
                     song_factors=load_npy(d / "song_factors.npy", mmap=mmap), config=cfg,
                     log=read_json(d / "train_log.json").get("iterations", []))
    return model, load_npy(d / "user_ids.npy", mmap=mmap), load_npy(d / "song_ids.npy", mmap=mmap)
