"""``pmrs evaluate --holdout``: the hold-out protocol, PMRS's models against reference models.

For a random set of test users, a random share of their songs is removed; every model is trained
on the rest (every other user untouched) and asked to rank, for each test user, all songs they
have not played in training. The metrics measure whether the removed songs come back.

PMRS's models are WMF, the neighbourhood model and ``pmrs`` (their blend, as PMRS would serve
it); with a :class:`~pmrs.tuning.SelectConfig` their settings are chosen inside the training part
of the split (validation users are never test users). The reference models
(:mod:`pmrs.evaluation.baselines`) are fitted on the same training matrix and scored by the same
code; the report's first table puts them side by side and the lift compares PMRS with the best
of them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..blend import blend_scores
from ..interactions import INTERACTIONS_DIR, Interactions
from ..neighbours import NeighboursConfig, build_neighbours
from ..report import markdown_table
from ..wmf import WMFConfig, train_wmf
from .baselines import REFERENCE_MODELS, reference_scores
from .metrics import evaluate_scores
from .split import HoldoutSplit, holdout_split

log = logging.getLogger(__name__)

REPORTS_DIR = "reports"
#: Cut-offs reported besides the configured ones, for the recall curve.
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 500)
#: PMRS's rows of the report; ``pmrs`` is what PMRS serves (the blend at the chosen share).
PMRS_MODELS = ("pmrs", "wmf", "neighbours")
#: Columns of the side-by-side table, and the metrics the lift is reported on.
SIDE_BY_SIDE = ("map@500", "recall@50", "ndcg@10", "auc")


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
                     show_progress: bool | None = None, neighbours_cfg: NeighboursConfig | None = None,
                     wmf_share: float = 1.0, references=REFERENCE_MODELS) -> dict:
    """Train PMRS's models and the reference models on ``split.train``; metrics of each on ``split``.

    Returns ``{"models": {name: metrics}, "seconds": {name: fit seconds, "evaluate": ...}}`` with
    PMRS's models first (``pmrs``: the blend at ``wmf_share``), then ``references``.
    """
    neighbours_cfg = neighbours_cfg or NeighboursConfig()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    model = train_wmf(split.train, wmf_cfg, show_progress=show_progress)
    seconds["wmf"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    nb = build_neighbours(split.train, neighbours_cfg, show_progress=False)
    seconds["neighbours"] = round(time.perf_counter() - t0, 2)
    seconds["pmrs"] = round(seconds["wmf"] + seconds["neighbours"], 2)
    train = split.train
    fns = {"pmrs": lambda rows: blend_scores(model.scores(rows), nb.scores(train[np.asarray(rows)]), wmf_share),
           "wmf": model.scores,
           "neighbours": lambda rows: nb.scores(train[np.asarray(rows)])}
    for name, (fn, fit_s) in reference_scores(train, references, seed=wmf_cfg.seed).items():
        fns[name] = fn
        seconds[name] = fit_s
    t1 = time.perf_counter()
    models = {name: evaluate_scores(fn, split, ks=ks, batch_size=batch_size, show_progress=show_progress)
              for name, fn in fns.items()}
    seconds["evaluate"] = round(time.perf_counter() - t1, 2)
    return {"models": models, "seconds": seconds}


def evaluate_holdout(workdir: str | Path, wmf_cfg: WMFConfig, cfg: HoldoutConfig | None = None,
                     run: str | None = None, show_progress: bool | None = None,
                     select=None, fixed: frozenset[str] = frozenset(),
                     neighbours_cfg: NeighboursConfig | None = None) -> Path:
    """Run the protocol on ``<workdir>/interactions``; write ``reports/<run>/``; return its path.

    ``select`` (a :class:`~pmrs.tuning.SelectConfig`, enabled): choose the WMF settings not named
    in ``fixed``, the neighbourhood model's (unless ``neighbours_cfg`` is given) and the blend
    share on a validation split drawn from this split's training part; otherwise ``wmf_cfg`` and
    ``neighbours_cfg`` (default settings) are used as given and ``pmrs`` is WMF alone.
    """
    from ..tuning import select_settings

    cfg = cfg or HoldoutConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    split = make_split(inter.matrix, cfg)
    ks = tuple(sorted(set(cfg.ks) | set(CURVE_KS) | {10, 50, 500}))
    selection = None
    wmf_share = 1.0
    if select is not None and select.enabled:
        selection = select_settings(split.train, wmf_cfg, fixed, select, exclude_users=split.test_users,
                                    neighbours=neighbours_cfg)
        wmf_cfg, neighbours_cfg, wmf_share = selection.wmf, selection.neighbours, selection.wmf_share
    neighbours_cfg = neighbours_cfg or NeighboursConfig()
    result = compare_on_split(split, wmf_cfg, ks, cfg.batch_size, show_progress=show_progress,
                              neighbours_cfg=neighbours_cfg, wmf_share=wmf_share)
    models = result["models"]
    n_eval = int((np.diff(split.test.indptr)[split.test_users] > 0).sum())
    references = [m for m in models if m not in PMRS_MODELS]
    best_reference = {k: max(references, key=lambda m: np.nan_to_num(models[m][k], nan=-1.0))
                      for k in SIDE_BY_SIDE}
    metrics = {
        "protocol": "holdout",
        "data": {"users": inter.n_users, "songs": inter.n_songs, "pairs": int(inter.matrix.nnz),
                 "test_users": int(len(split.test_users)), "evaluated_users": n_eval,
                 "held_out_pairs": int(split.test.nnz)},
        "config": {"holdout": asdict(cfg), "wmf": asdict(wmf_cfg), "neighbours": asdict(neighbours_cfg),
                   "wmf_share": wmf_share,
                   "settings": "selected on validation" if selection is not None else "as given"},
        "models": models,
        "pmrs_models": list(PMRS_MODELS),
        "reference_models": references,
        "best_reference": best_reference,
        "lift": {k: _ratio(models["pmrs"][k], models[best_reference[k]][k]) for k in SIDE_BY_SIDE},
        "lift_over_popularity": {k: _ratio(models["pmrs"][k], models["popularity"][k])
                                 for k in models["pmrs"] if not k.startswith("coverage")}
        if "popularity" in models else {},
        "selection": selection.as_dict() if selection is not None else None,
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


def side_by_side(metrics: dict) -> str:
    """The report's first table: every model of the report on the headline metrics."""
    headers = ["model", "kind", *SIDE_BY_SIDE, "fit s"]
    rows = [[model, "PMRS" if model in metrics["pmrs_models"] else "reference",
             *[m[k] for k in SIDE_BY_SIDE], metrics["seconds"].get(model, "")]
            for model, m in metrics["models"].items()]
    return markdown_table(headers, rows)


def render_report(metrics: dict, ks) -> str:
    d = metrics["data"]
    c = metrics["config"]
    names = ["precision", "recall", "map", "ndcg", "coverage"]
    headers = ["model"] + [f"{n}@{k}" for k in ks for n in names] + ["auc"]
    rows = [[model] + [m[f"{n}@{k}"] for k in ks for n in names] + [m["auc"]]
            for model, m in metrics["models"].items()]
    w, nb = c["wmf"], c["neighbours"]
    lift = ", ".join(f"{k} {metrics['lift'][k]}x ({metrics['best_reference'][k]})" for k in SIDE_BY_SIDE)
    lines = [
        "# Hold-out evaluation",
        "",
        f"{d['users']:,} users x {d['songs']:,} songs ({d['pairs']:,} pairs); {d['test_users']:,} test "
        f"users, {c['holdout']['holdout_fraction']:.0%} of each one's songs held out "
        f"({d['held_out_pairs']:,} pairs). Candidates: every song not in the user's training row.",
        "",
        side_by_side(metrics),
        "",
        f"PMRS against the best reference model on each metric: {lift}.",
        "",
        f"Settings {c['settings']}. WMF: {w['factors']} factors, alpha {w['alpha']}, eps {w['eps']}, "
        f"regularization {w['regularization']}, {w['iterations']} iterations. Neighbours: "
        f"{nb['similarity']}, alpha {nb['alpha']}, locality {nb['locality']}, {nb['neighbours']} per song. "
        f"pmrs = WMF share {c['wmf_share']} of the blend.",
        "",
        "## All metrics",
        "",
        markdown_table(headers, rows),
        "",
        "![recall at k](recall_at_k.png)",
        "",
    ]
    if metrics.get("selection"):
        from ..tuning import selection_table

        sel = metrics["selection"]
        lines += ["## Settings search (validation split of the training part)", "",
                  f"{sel['validation_users']:,} validation users of {sel['sampled_users']:,} sampled; "
                  f"cost {sel['spent_in_plain_fits']} plain fits of {sel['budget_in_plain_fits']} allowed; "
                  f"{sel['seconds']} s; scored by {sel['metric']}.", "",
                  selection_table(sel["trials"]), ""]
    return "\n".join(lines)


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
