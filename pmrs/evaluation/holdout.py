"""``pmrs evaluate --holdout``: the hold-out protocol, PMRS as served against reference models.

For a random set of test users, a random share of their songs is removed; every model is trained
on the rest (every other user untouched) and asked to rank, for each test user, the songs they
have not played in training. The metrics measure whether the removed songs come back.

PMRS's rows are what PMRS would serve after the commands a user runs, run on the split's training
part in a scratch work directory: ``pmrs train-wmf`` and ``pmrs train-neighbours`` (settings and
the neighbours source's share chosen on validation, as those commands choose them), then
``indexer build``. The ``pmrs`` row is the served :class:`pmrs.Recommender` over that bundle: each
metric at ``k`` scores the list a request for ``k`` songs gets (quotas depend on ``k``). The
``wmf`` and ``neighbours`` rows are those same two runs alone, scored over every song. The
acoustic source is not in that bundle: its CNN predicts the latent space of one WMF run (trained
on every play), not of the split's run, and the report says so. The reference models
(:mod:`pmrs.evaluation.baselines`) are fitted on the same training matrix and scored by the same
code; the report's first table puts them side by side and the lift compares PMRS with the best
of them.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..artifacts import new_run_name, read_json, staged_dir, write_json, write_text
from ..collaborative.neighbours import load_run as load_neighbours_run
from ..collaborative.training import train_neighbours_run, train_wmf_run
from ..collaborative.wmf import WMFConfig, load_run as load_wmf_run
from ..interactions import INTERACTIONS_DIR, Interactions, lookup_many
from ..report import markdown_table
from .baselines import REFERENCE_MODELS, references as fit_references, settings_text
from .metrics import evaluate_scores, ranking_metrics
from .scratch import scratch_workdir
from .split import HoldoutConfig, HoldoutSplit, make_split

__all__ = ["HoldoutConfig", "PMRS_MODELS", "evaluate_holdout", "make_split", "served_lists", "served_metrics"]

log = logging.getLogger(__name__)

REPORTS_DIR = "reports"
#: Cut-offs reported besides the configured ones, for the recall curve.
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 500)
#: PMRS's rows of the report; ``pmrs`` is what PMRS serves (the served Recommender's answers).
PMRS_MODELS = ("pmrs", "wmf", "neighbours")
#: Columns of the side-by-side table, and the metrics the lift is reported on.
SIDE_BY_SIDE = ("map@500", "recall@50", "ndcg@10", "auc")
#: The scratch work directory's bundle, kept in the report folder when asked (``keep_bundle``).
SERVED_DIR = "served"


def served_lists(rec, user_ids: list[str], song_ids: np.ndarray, k: int) -> np.ndarray:
    """``(len(user_ids), k)`` int64: the columns (indices into the sorted ``song_ids``) of what
    ``rec.recommend(user, k=k)`` answers for each user, best first, -1 past the end of a short
    list. ``rec``: a :class:`pmrs.Recommender` (or anything with its ``recommend``)."""
    out = np.full((len(user_ids), k), -1, np.int64)
    for i, user in enumerate(user_ids):
        got = rec.recommend(user, k=k).song_ids
        if got:
            out[i, :len(got)] = lookup_many(song_ids, got)
    return out


def served_metrics(rec, split: HoldoutSplit, user_ids: np.ndarray, song_ids: np.ndarray, ks,
                   show_progress: bool | None = None) -> dict[str, float]:
    """The hold-out metrics of the answers ``rec`` serves: for each ``k`` of ``ks``, precision,
    recall, mAP, NDCG and coverage at ``k`` of the list a request for ``k`` songs gets, for every
    test user with a held-out song; ``auc`` from the longest list, the songs it leaves out tied
    below it (a served list has no order beyond its end)."""
    users = split.test_users[np.diff(split.test.indptr)[split.test_users] > 0]
    ids = [u.decode() for u in np.asarray(user_ids)[users]]
    out: dict[str, float] = {}
    longest = None
    for k in tqdm(sorted(set(ks)), desc="served lists", unit="k", disable=not show_progress, leave=False):
        lists = served_lists(rec, ids, song_ids, k)
        out.update(ranking_metrics(lists, split.test, users, ks=(k,)))
        longest = lists
    out["auc"] = _list_auc(longest, split, users) if longest is not None else float("nan")
    return out


def _list_auc(lists: np.ndarray, split: HoldoutSplit, users: np.ndarray) -> float:
    """Mean AUC of ranked lists: a held-out song in the list beats the negatives below it and all
    unlisted ones; one outside the list ties with the unlisted negatives (half credit)."""
    n_songs = split.test.shape[1]
    train_len = np.diff(split.train.indptr)
    aucs = []
    for row, u in zip(lists, users):
        pos = set(split.test.indices[split.test.indptr[u]:split.test.indptr[u + 1]].tolist())
        n_neg = n_songs - int(train_len[u]) - len(pos)
        if not pos or n_neg <= 0:
            continue
        listed = row[row >= 0].tolist()
        credit, neg_above, neg_listed = 0.0, 0, 0
        for r in listed:
            if r in pos:
                credit += n_neg - neg_above
            else:
                neg_above += 1
                neg_listed += 1
        unlisted_pos = len(pos) - sum(1 for r in listed if r in pos)
        credit += unlisted_pos * (n_neg - neg_listed) / 2.0
        aucs.append(credit / (len(pos) * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def evaluate_holdout(workdir: str | Path, wmf_cfg: WMFConfig, cfg: HoldoutConfig | None = None,
                     run: str | None = None, show_progress: bool | None = None,
                     select=None, fixed: frozenset[str] = frozenset(),
                     neighbours_cfg=None, indexer_cfg=None, metadata_cfg=None,
                     references=REFERENCE_MODELS, keep_bundle: bool = False) -> Path:
    """Run the protocol on ``<workdir>/interactions``; write ``reports/<run>/``; return its path.

    The split's training part goes through ``train_wmf_run`` (``wmf_cfg``; with ``select``, a
    :class:`~pmrs.collaborative.selection.SelectConfig` that is enabled, the settings not named in
    ``fixed`` are chosen on validation), ``train_neighbours_run`` (``neighbours_cfg`` as given,
    else chosen with ``select``) and ``build_bundle`` (``indexer_cfg``, ``metadata_cfg``: as
    ``indexer build`` takes them; no default lists, which equal the computed answers) in a scratch
    work directory under ``reports/``, removed afterwards unless ``keep_bundle`` (then the bundle
    is moved to ``reports/<run>/served/``). With ``cfg.split == "time"`` the protocol runs twice,
    on the time split (each test user's latest songs held out; the report's main table) and on
    the random split beside it, every model of the report on both.
    """
    cfg = cfg or HoldoutConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    first = inter.time["first_played"] if inter.time is not None else None
    ks = tuple(sorted(set(cfg.ks) | set(CURVE_KS) | {10, 50, 500}))
    (workdir / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    kinds = ["time", "random"] if cfg.split == "time" else ["random"]
    results = {}
    out = workdir / REPORTS_DIR / (run or f"holdout-{new_run_name()}")
    with staged_dir(out) as tmp:
        for kind in kinds:
            kcfg = replace(cfg, split=kind)
            split = make_split(inter.matrix, kcfg, first)
            keep = tmp / SERVED_DIR if keep_bundle and kind == kinds[0] else None
            # settings are chosen on a validation split drawn as this test split is (a time split's
            # validation users have their latest songs held out)
            kselect = replace(select, split=kind) if select is not None else None
            results[kind] = _run_split(workdir, inter, split, kcfg, ks, wmf_cfg, kselect, fixed, neighbours_cfg,
                                       indexer_cfg, metadata_cfg, references, show_progress, keep)
        metrics = results[kinds[0]]
        if len(kinds) > 1:
            metrics["splits"] = {k: {"models": r["models"], "data": r["data"], "best_reference": r["best_reference"],
                                     "lift": r["lift"], "references": r["references"]} for k, r in results.items()}
        write_json(tmp / "metrics.json", metrics)
        _plot_recall(metrics, tmp / "recall_at_k.png")
        write_text(tmp / "report.md", render_report(metrics, cfg.ks))
    return out


def _run_split(workdir: Path, inter: Interactions, split: HoldoutSplit, cfg: HoldoutConfig, ks, wmf_cfg, select,
               fixed, neighbours_cfg, indexer_cfg, metadata_cfg, references, show_progress,
               keep: Path | None) -> dict:
    """The protocol on one split (:func:`evaluate_holdout`): the report's metrics of it."""
    from ..indexing.build import build_bundle
    from ..indexing.config import IndexerConfig
    from ..recommender import Recommender

    scratch = scratch_workdir(workdir, inter, split.train, ".holdout-", parent=workdir / REPORTS_DIR)
    train_first = None
    if inter.time is not None:   # the training part keeps its plays' times (the decay and a time split use them)
        timed = _train_times(inter, split)
        timed.save(scratch / INTERACTIONS_DIR)
        train_first = timed.time["first_played"]
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        wmf_dir = train_wmf_run(scratch, wmf_cfg, select=select, fixed=fixed, show_progress=show_progress)
        seconds["wmf"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        nb_dir = train_neighbours_run(scratch, neighbours_cfg, select=select, show_progress=show_progress,
                                      metadata_cfg=metadata_cfg)
        seconds["neighbours"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        icfg = replace(indexer_cfg or IndexerConfig(), default_lists=False, keep=1, acoustic=False)
        bundle_dir = build_bundle(scratch, icfg, metadata_cfg=metadata_cfg, show_progress=False)
        seconds["pmrs"] = round(seconds["wmf"] + seconds["neighbours"] + time.perf_counter() - t0, 2)

        t1 = time.perf_counter()
        wmf_model, _, _ = load_wmf_run(wmf_dir)
        nb_model, _ = load_neighbours_run(nb_dir)
        train = split.train
        with Recommender.open(bundle_dir) as rec:
            models = {"pmrs": served_metrics(rec, split, inter.user_ids, inter.song_ids, ks, show_progress),
                      **_score_models({"wmf": wmf_model.scores,
                                       "neighbours": lambda rows: nb_model.scores(train[np.asarray(rows)])},
                                      split, ks, cfg.batch_size, show_progress)}
            served = {"bundle": bundle_dir.name, "sources": rec.sources,
                      "shares": dict(rec.info().defaults.shares),
                      "default_shares": {s.name: s.default_share for s in rec.info().sources}}
        seconds["evaluate_pmrs"] = round(time.perf_counter() - t1, 2)
        wmf_conf = read_json(wmf_dir / "config.json")
        nb_conf = read_json(nb_dir / "config.json")
        fitted = fit_references(train, references, seed=wmf_model.config.seed, select=select,
                                first_played=train_first)
        t1 = time.perf_counter()
        for name, ref in fitted.items():
            if ref.fitted is None:
                continue
            models[name] = evaluate_scores(ref.fitted.scores, split, ks=ks, batch_size=cfg.batch_size,
                                           show_progress=show_progress)
            seconds[name] = ref.seconds
        seconds["evaluate"] = round(time.perf_counter() - t1, 2)
        metrics = _metrics(inter, split, cfg, models, seconds, wmf_conf, nb_conf, served,
                           selected=select is not None and select.enabled)
        metrics["references"] = {name: ref.describe() for name, ref in fitted.items()}
        if keep is not None:
            shutil.move(str(bundle_dir), str(keep))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return metrics


def _train_times(inter: Interactions, split: HoldoutSplit) -> Interactions:
    """The split's training part as interactions, with the times of its plays (aligned by the
    pairs the training part kept) and the skips."""
    m = inter.matrix
    time_of = {}
    for name, values in inter.time.items():
        shifted = sp.csr_matrix((np.asarray(values, np.float64) + 2.0, m.indices, m.indptr), shape=m.shape)
        kept = shifted.multiply(split.train != 0).tocsr()   # (+2: no value is 0, so none is dropped)
        kept.sort_indices()
        time_of[name] = (kept.data - 2.0).astype(np.int64)
    return Interactions(split.train, inter.user_ids, inter.song_ids, time=time_of, skips=inter.skips)


def _score_models(fns: dict, split: HoldoutSplit, ks, batch_size: int, show_progress) -> dict[str, dict]:
    return {name: evaluate_scores(fn, split, ks=ks, batch_size=batch_size, show_progress=show_progress)
            for name, fn in fns.items()}


def _metrics(inter: Interactions, split: HoldoutSplit, cfg: HoldoutConfig, models: dict, seconds: dict,
             wmf_conf: dict, nb_conf: dict, served: dict, selected: bool) -> dict:
    n_eval = int((np.diff(split.test.indptr)[split.test_users] > 0).sum())
    references = [m for m in models if m not in PMRS_MODELS]
    best_reference = {k: max(references, key=lambda m: np.nan_to_num(models[m][k], nan=-1.0))
                      for k in SIDE_BY_SIDE} if references else {}
    wmf_sel, nb_sel = wmf_conf.pop("selection", None), nb_conf.pop("selection", None)
    share = nb_conf.pop("serving_share", None)
    return {
        "protocol": "holdout",
        "data": {"split": cfg.split, "users": inter.n_users, "songs": inter.n_songs, "pairs": int(inter.matrix.nnz),
                 "test_users": int(len(split.test_users)), "evaluated_users": n_eval,
                 "held_out_pairs": int(split.test.nnz)},
        "config": {"holdout": asdict(cfg), "wmf": wmf_conf, "neighbours": nb_conf,
                   "served": served,
                   "settings": "selected on validation" if selected else "as given"},
        "models": models,
        "pmrs_models": list(PMRS_MODELS),
        "reference_models": references,
        "best_reference": best_reference,
        "lift": {k: _ratio(models["pmrs"][k], models[best_reference[k]][k]) for k in best_reference},
        "lift_over_popularity": {k: _ratio(models["pmrs"][k], models["popularity"][k])
                                 for k in models["pmrs"] if not k.startswith("coverage")}
        if "popularity" in models else {},
        "selection": {"wmf": wmf_sel, "neighbours": nb_sel,
                      "neighbours_share": share} if selected else None,
        "seconds": seconds,
    }


def _held_out(holdout: dict, split: str) -> str:
    if split != "time":
        return f"{holdout['holdout_fraction']:.0%} of each one's songs held out at random"
    if holdout.get("cutoff"):
        return f"the songs each one first played from {holdout['cutoff']} on held out (time split)"
    return f"the latest {holdout['holdout_fraction']:.0%} of each one's songs, by first play, held out (time split)"


def _ratio(a: float, b: float) -> float | None:
    return None if not b or np.isnan(b) else round(a / b, 3)


def side_by_side(metrics: dict) -> str:
    """The report's first table: every model of the report on the headline metrics."""
    headers = ["model", "kind", *SIDE_BY_SIDE, "fit s"]
    rows = [[model, "PMRS" if model in metrics["pmrs_models"] else "reference",
             *[m[k] for k in SIDE_BY_SIDE], metrics["seconds"].get(model, "")]
            for model, m in metrics["models"].items()]
    return markdown_table(headers, rows)


def references_table(refs: dict) -> str:
    """The reference models' settings: chosen on validation (and of how many), at their
    library's defaults, or skipped with the reason."""
    if not refs:
        return ""
    rows = [[name, settings_text(ref)] for name, ref in refs.items()]
    return "Reference models' settings (where a search ran: chosen by the same metric on a validation " \
        "split of the training part drawn as PMRS's own search draws it, the same split unless that " \
        "search sampled its users):\n\n" + markdown_table(["reference", "settings"], rows)


def render_report(metrics: dict, ks) -> str:
    d = metrics["data"]
    c = metrics["config"]
    names = ["precision", "recall", "map", "ndcg", "coverage"]
    headers = ["model"] + [f"{n}@{k}" for k in ks for n in names] + ["auc"]
    rows = [[model] + [m[f"{n}@{k}"] for k in ks for n in names] + [m["auc"]]
            for model, m in metrics["models"].items()]
    w, nb, served = c["wmf"], c["neighbours"], c["served"]
    lift = ", ".join(f"{k} {metrics['lift'][k]}x ({metrics['best_reference'][k]})" for k in metrics["lift"])
    shares = ", ".join(f"{name} {share:.3g}" for name, share in served["default_shares"].items())
    lines = [
        "# Hold-out evaluation" + (" (time split)" if d.get("split") == "time" else ""),
        "",
        f"{d['users']:,} users x {d['songs']:,} songs ({d['pairs']:,} pairs); {d['test_users']:,} test "
        f"users, {_held_out(c['holdout'], d.get('split', 'random'))} "
        f"({d['held_out_pairs']:,} pairs). Candidates: every song not in the user's training row.",
        "",
        side_by_side(metrics),
        "",
        f"PMRS against the best reference model on each metric: {lift}." if lift else "",
        "",
        "`pmrs` is what PMRS serves: `pmrs.Recommender`'s answers over a bundle that `indexer build` "
        "made from the runs `pmrs train-wmf` and `pmrs train-neighbours` made on the training part; "
        "each metric at k scores the answer to a request for k songs, and its AUC ranks the songs past "
        "the longest list as tied. `wmf` and `neighbours` are those two runs alone, over every song. "
        f"Served shares: {shares}. The acoustic source is left out of this bundle: its CNN predicts "
        "the latent space of a WMF run trained on every play, not of this split's run "
        "(`pmrs evaluate --cold-start` measures it).",
        "",
        f"Settings {c['settings']}. WMF: {w['factors']} factors, alpha {w['alpha']}, eps {w['eps']}, "
        f"regularization {w['regularization']}, {w['iterations']} iterations. Neighbours: "
        + (f"ease, lambda {nb['ease_lambda']:g}" if nb["similarity"] == "ease" else
           f"{nb['similarity']}, alpha {nb['alpha']}, locality {nb['locality']}") + f", {nb['neighbours']} per song.",
        "",
        references_table(metrics.get("references") or {}),
        "",
        "## All metrics",
        "",
        markdown_table(headers, rows),
        "",
        "![recall at k](recall_at_k.png)",
        "",
    ]
    splits = metrics.get("splits") or {}
    if "random" in splits and d.get("split") == "time":
        r = splits["random"]
        lines += ["## The same models on a random split", "",
                  f"{r['data']['test_users']:,} test users, {c['holdout']['holdout_fraction']:.0%} of each one's "
                  f"songs held out at random ({r['data']['held_out_pairs']:,} pairs): the protocol of the "
                  "research papers, beside the time split above, the one a service lives by.", "",
                  side_by_side({**metrics, "models": r["models"]}), ""]
    sel = metrics.get("selection") or {}
    for what in ("wmf", "neighbours"):
        found = sel.get(what)
        if found:
            from ..collaborative.selection import selection_table

            lines += [f"## {what} settings search (validation split of the training part)", "",
                      f"{found['validation_users']:,} validation users"
                      f"{' (their latest songs held out)' if found.get('split') == 'time' else ''} of "
                      f"{found['sampled_users']:,} sampled; cost {found['spent_in_plain_fits']} plain fits of "
                      f"{found['budget_in_plain_fits']} allowed; {found['seconds']} s; scored by "
                      f"{found['metric']}.", "", selection_table(found["trials"]), ""]
    share = sel.get("neighbours_share")
    if share:
        lines += ["## Neighbours source's share (through the served blend)", "",
                  markdown_table(["share", "map@500", "recall@50", "score"],
                                 [[t["share"], t["map@500"], t["recall@50"], t["score"]] for t in share["table"]]),
                  "", f"Chosen: {share['share']} on {share['validation_users']:,} validation users.", ""]
        if share.get("metadata_table"):
            lines += ["Then the metadata source's share, given that one:", "",
                      markdown_table(["metadata share", "neighbours share", "map@500", "recall@50", "score"],
                                     [[t["metadata_share"], t["neighbours_share"], t["map@500"], t["recall@50"],
                                       t["score"]] for t in share["metadata_table"]]),
                      "", f"Chosen: {share['metadata_share']}.", ""]
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
