"""Training stages over a work directory: read inputs, train, write a run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .artifacts import new_run_name
from .interactions import INTERACTIONS_DIR, Interactions
from .wmf import WMF_DIR, WMFConfig, save_run, train_wmf

log = logging.getLogger(__name__)


def train_wmf_run(workdir: str | Path, cfg: WMFConfig, run: str | None = None,
                  show_progress: bool | None = None) -> Path:
    """Train WMF on ``<workdir>/interactions`` and write ``models/wmf/<run>/``."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    load_s = time.perf_counter() - t0
    log.info("training WMF on %d users x %d songs (%d plays), %d factors",
             inter.n_users, inter.n_songs, inter.matrix.nnz, cfg.factors)
    t1 = time.perf_counter()
    model = train_wmf(inter.matrix, cfg, show_progress=show_progress)
    fit_s = time.perf_counter() - t1
    run_dir = workdir / WMF_DIR / (run or new_run_name())
    save_run(model, run_dir, inter.user_ids, inter.song_ids,
             extra={"load_seconds": round(load_s, 3), "fit_seconds": round(fit_s, 3),
                    "users": inter.n_users, "songs": inter.n_songs, "nonzeros": int(inter.matrix.nnz)})
    log.info("WMF: %.1fs load, %.1fs fit -> %s", load_s, fit_s, run_dir)
    return run_dir
