"""``pmrs evaluate --holdout``: the hold-out protocol, WMF against a popularity baseline.

For a random set of test users, a random share of their songs is removed; WMF is trained on the
rest (every other user untouched) and asked to rank, for each test user, all songs they have not
played in training. The metrics measure whether the removed songs come back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..interactions import INTERACTIONS_DIR, Interactions
from ..report import markdown_table
from ..wmf import WMFConfig, train_wmf
from .metrics import evaluate_scores, popularity_scores
from .split import HoldoutSplit, holdout_split

log = logging.getLogger(__name__)

REPORTS_DIR = "reports"
#: Cut-offs reported besides the configured ones, for the recall curve.
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 500)


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if self.test_users <= 0:
            raise ValueError("test_users must be positive")


def make_split(counts, cfg: HoldoutConfig) -> HoldoutSplit:
    """The test split of ``counts`` under ``cfg`` (capped at ``max_test_users``)."""
    n_eligible = int((np.diff(counts.indptr) >= max(cfg.min_songs, 2)).sum())
    share = cfg.test_users < 1
    n_test = int(round(cfg.test_users * n_eligible)) if share else int(cfg.test_users)
    n_test = max(1, min(n_test, cfg.max_test_users, n_eligible))
    return holdout_split(counts, test_users=n_test, holdout_fraction=cfg.holdout_fraction,
                         min_songs=cfg.min_songs, seed=cfg.seed)


def compare_on_split(split: HoldoutSplit, wmf_cfg: WMFConfig, ks, batch_size: int = 512,
                     show_progress: bool | None = None) -> dict:
    """Train WMF on ``split.train``; metrics of WMF and of popularity on ``split``."""
    t0 = time.perf_counter()
    model = train_wmf(split.train, wmf_cfg, show_progress=show_progress)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    wmf = evaluate_scores(model.scores, split, ks=ks, batch_size=batch_size,
                          show_progress=show_progress)
    eval_s = time.perf_counter() - t1
    pop = popularity_scores(split.train)
    popularity = evaluate_scores(lambda rows: np.broadcast_to(pop, (len(rows), pop.size)),
                                 split, ks=ks, batch_size=batch_size, show_progress=show_progress)
    return {"wmf": wmf, "popularity": popularity,
            "seconds": {"train": round(train_s, 2), "evaluate": round(eval_s, 2)}}


def evaluate_holdout(workdir: str | Path, wmf_cfg: WMFConfig, cfg: HoldoutConfig | None = None,
                     run: str | None = None, show_progress: bool | None = None) -> Path:
    """Run the protocol on ``<workdir>/interactions``; write ``reports/<run>/``; return its path."""
    cfg = cfg or HoldoutConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    split = make_split(inter.matrix, cfg)
    ks = tuple(sorted(set(cfg.ks) | set(CURVE_KS)))
    result = compare_on_split(split, wmf_cfg, ks, cfg.batch_size, show_progress=show_progress)
    n_eval = int((np.diff(split.test.indptr)[split.test_users] > 0).sum())
    metrics = {
        "protocol": "holdout",
        "data": {"users": inter.n_users, "songs": inter.n_songs, "pairs": int(inter.matrix.nnz),
                 "test_users": int(len(split.test_users)), "evaluated_users": n_eval,
                 "held_out_pairs": int(split.test.nnz)},
        "config": {"holdout": asdict(cfg), "wmf": asdict(wmf_cfg)},
        "models": {"wmf": result["wmf"], "popularity": result["popularity"]},
        "lift": {k: _ratio(result["wmf"][k], result["popularity"][k])
                 for k in result["wmf"] if not k.startswith("coverage")},
        "seconds": result["seconds"],
    }
    out = workdir / REPORTS_DIR / (run or f"holdout-{new_run_name()}")
    with staged_dir(out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        _plot_recall(metrics, tmp / "recall_at_k.png")
        write_text(tmp / "report.md", render_report(metrics, cfg.ks))
    return out


def _ratio(a: float, b: float) -> float | None:
    return None if not b or np.isnan(b) else round(a / b, 3)


def render_report(metrics: dict, ks) -> str:
    d = metrics["data"]
    names = ["precision", "recall", "map", "ndcg", "coverage"]
    headers = ["model"] + [f"{n}@{k}" for k in ks for n in names] + ["auc"]
    rows = [[model] + [m[f"{n}@{k}"] for k in ks for n in names] + [m["auc"]]
            for model, m in metrics["models"].items()]
    w = metrics["config"]["wmf"]
    return "\n".join([
        "# Hold-out evaluation",
        "",
        f"{d['users']:,} users x {d['songs']:,} songs ({d['pairs']:,} pairs); {d['test_users']:,} test "
        f"users, {metrics['config']['holdout']['holdout_fraction']:.0%} of each one's songs held out "
        f"({d['held_out_pairs']:,} pairs). Candidates: every song not in the user's training row.",
        "",
        markdown_table(headers, rows),
        "",
        f"WMF: {w['factors']} factors, alpha {w['alpha']}, eps {w['eps']}, regularization "
        f"{w['regularization']}, {w['iterations']} iterations. "
        f"recall@50 lift over popularity: {metrics['lift'].get('recall@50')}x.",
        "",
        "![recall at k](recall_at_k.png)",
        "",
    ])


def _plot_recall(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for model, m in metrics["models"].items():
        ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("recall@"))
        ax.plot(ks, [m[f"recall@{k}"] for k in ks], marker="o", label=model)
    ax.set_xscale("log")
    ax.set_xlabel("k (songs recommended)")
    ax.set_ylabel("recall@k")
    ax.set_title("Held-out songs recovered")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
