"""``pmrs tune``: random search over WMF settings on a validation split.

The test split of ``pmrs evaluate --holdout`` (same settings and seed) is made first and set
aside: the validation split is drawn from its training matrix, and none of its users are test
users, so tuning never sees a held-out test song. Each trial trains on the validation split's
training part and is scored on its held-out part.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .artifacts import new_run_name, staged_dir, write_json, write_text
from .evaluation.holdout import HoldoutConfig, make_split
from .evaluation.metrics import evaluate_scores
from .evaluation.split import validation_split
from .interactions import INTERACTIONS_DIR, Interactions
from .report import markdown_table
from .wmf import WMFConfig, train_wmf

log = logging.getLogger(__name__)

TUNE_DIR = Path("models") / "tune"


@dataclass(frozen=True)
class TuneConfig:
    """Settings for ``pmrs tune`` (``[tune]`` in a TOML config)."""

    trials: int = 12
    iterations: int = 10
    seed: int = 0
    metric: str = "map@500"
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    epss: tuple[float, ...] = (0.1, 1.0, 10.0)
    regularizations: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    factors: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        if self.trials < 0 or self.iterations < 1:
            raise ValueError("trials must be >= 0 and iterations >= 1")
        if "@" not in self.metric and self.metric != "auc":
            raise ValueError(f"metric must look like map@500, recall@50, ndcg@10 or be auc; got {self.metric!r}")


def _candidates(cfg: TuneConfig, base: WMFConfig) -> list[WMFConfig]:
    """The base config, then ``cfg.trials`` distinct random grid points."""
    rng = np.random.default_rng(cfg.seed)
    out = [replace(base, iterations=cfg.iterations)]
    seen = {(base.alpha, base.eps, base.regularization, base.factors)}
    grid_size = len(cfg.alphas) * len(cfg.epss) * len(cfg.regularizations) * len(cfg.factors)
    while len(out) < 1 + min(cfg.trials, grid_size - 1):
        point = (float(rng.choice(cfg.alphas)), float(rng.choice(cfg.epss)),
                 float(rng.choice(cfg.regularizations)), int(rng.choice(cfg.factors)))
        if point in seen:
            continue
        seen.add(point)
        a, e, r, f = point
        out.append(replace(base, alpha=a, eps=e, regularization=r, factors=f, iterations=cfg.iterations))
    return out


def tune(workdir: str | Path, cfg: TuneConfig, base: WMFConfig | None = None,
         holdout: HoldoutConfig | None = None, run: str | None = None) -> Path:
    """Search, write ``models/tune/<run>/`` (``trials.json``, ``tune.md``, ``best.toml``)."""
    base = base or WMFConfig()
    holdout = holdout or HoldoutConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    test = make_split(inter.matrix, holdout)
    val = validation_split(test, test_users=len(test.test_users), holdout_fraction=holdout.holdout_fraction,
                           min_songs=holdout.min_songs, seed=holdout.seed + 1)
    ks = sorted({10, 50, 500} | ({int(cfg.metric.split("@")[1])} if "@" in cfg.metric else set()))
    trials = []
    for wcfg in tqdm(_candidates(cfg, base), desc="tune", unit="trial", disable=None):
        t0 = time.perf_counter()
        model = train_wmf(val.train, wcfg, show_progress=False)
        metrics = evaluate_scores(model.scores, val, ks=ks, batch_size=holdout.batch_size,
                                  show_progress=False)
        trials.append({"config": asdict(wcfg), "metrics": metrics,
                       "seconds": round(time.perf_counter() - t0, 2)})
        log.info("alpha %g eps %g reg %g factors %d: %s %.4f", wcfg.alpha, wcfg.eps,
                 wcfg.regularization, wcfg.factors, cfg.metric, metrics[cfg.metric])
    trials.sort(key=lambda t: -np.nan_to_num(t["metrics"][cfg.metric], nan=-1.0))
    best = WMFConfig(**{**trials[0]["config"], "iterations": base.iterations})
    out = workdir / TUNE_DIR / (run or new_run_name())
    with staged_dir(out) as tmp:
        write_json(tmp / "trials.json", {"metric": cfg.metric, "tune": asdict(cfg),
                                         "validation_users": int(len(val.test_users)),
                                         "trials": trials})
        write_text(tmp / "best.toml", to_toml("wmf", asdict(best)))
        headers = ["alpha", "eps", "regularization", "factors", cfg.metric, "recall@50", "auc", "seconds"]
        rows = [[t["config"]["alpha"], t["config"]["eps"], t["config"]["regularization"],
                 t["config"]["factors"], t["metrics"][cfg.metric], t["metrics"]["recall@50"],
                 t["metrics"]["auc"], t["seconds"]] for t in trials]
        write_text(tmp / "tune.md", "\n".join([
            "# WMF tuning", "",
            f"{len(trials)} settings, {cfg.iterations} iterations each, scored by {cfg.metric} on "
            f"a validation split of {len(val.test_users):,} users drawn from the training part of "
            "the test split (test users and their held-out songs never seen). Best first.", "",
            markdown_table(headers, rows), "",
            "Use the best with `pmrs train-wmf --config best.toml`.", ""]))
    return out


def to_toml(section: str, values: dict) -> str:
    def fmt(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[{section}]\n" + "".join(f"{k} = {fmt(v)}\n" for k, v in values.items())
