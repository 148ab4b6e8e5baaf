"""Listeners the models never saw, as the published protocols (``pmrs evaluate --protocol``)
pose them: every model is trained on other users, then given each evaluation listener's visible
songs and asked for a ranked list of the others.

PMRS's lists are what the server answers a listener known only by those songs: the runs `pmrs
train-wmf` and `pmrs train-neighbours` make on the training users (settings chosen on a
validation split of them, as those commands choose), ``indexer build``, then
:meth:`pmrs.Recommender.recommend` with the visible songs as seeds (fold-in: one ALS half-step;
the neighbours source sums their rows), one request per cut-off. A request takes at most
``MAX_SEEDS`` seeds: a listener with more sends the most played (the report counts them). The
reference models (:mod:`pmrs.evaluation.baselines`) are fitted on the same training matrix,
their settings chosen on the same validation split, and fold the listener in their own way
(EASE and the item-kNN models: the songs times the item-item matrix; implicit's ALS:
``recalculate_user``); implicit's BPR has no fold-in and is left out, with the reason.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..errors import NotFound
from ..interactions import Interactions, lookup_many
from ..serving.contract import MAX_SEEDS
from .baselines import REFERENCE_MODELS
from .baselines import references as fit_references
from .metrics import top_k
from .scratch import scratch_workdir

log = logging.getLogger(__name__)

#: Why a reference model has no row in these protocols.
NO_FOLD_IN = "implicit's BPR has no fold-in for a listener it was not trained on"


def seeds_of(visible: sp.csr_matrix, row: int, song_ids: np.ndarray) -> list[str]:
    """The seed songs of ``visible``'s row ``row``: every song, or the ``MAX_SEEDS`` most played
    (ties: the lower column) when there are more."""
    lo, hi = visible.indptr[row], visible.indptr[row + 1]
    cols, counts = visible.indices[lo:hi], visible.data[lo:hi]
    if cols.size > MAX_SEEDS:
        cols = cols[np.lexsort((cols, -counts))[:MAX_SEEDS]]
    return [s.decode() for s in song_ids[np.sort(cols)]]


def served_lists(rec, visible: sp.csr_matrix, song_ids: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` int64 columns (of ``song_ids``) that ``rec`` answers each row of ``visible``
    (users x songs, the columns of ``song_ids``) sent as seeds, -1 past a short list's end and
    for a listener none of whose songs the bundle knows."""
    out = np.full((visible.shape[0], k), -1, np.int64)
    for i in range(visible.shape[0]):
        seeds = seeds_of(visible, i, song_ids)
        if not seeds:
            continue
        try:
            got = rec.recommend(seed_song_ids=seeds, k=k).song_ids
        except NotFound:
            continue
        if got:
            out[i, :len(got)] = lookup_many(song_ids, got)
    return out


def reference_lists(new_users, visible: sp.csr_matrix, k: int, batch_size: int = 512) -> np.ndarray:
    """``(n, k)`` int64 best columns of ``new_users(visible rows)`` scores, the visible songs
    left out, -1 where fewer are scored above -inf (:func:`pmrs.evaluation.metrics.top_k`)."""
    visible = sp.csr_matrix(visible)
    return top_k(lambda rows: new_users(visible[rows]), np.arange(visible.shape[0]), visible, k, batch_size)


def new_listener_lists(workdir: Path, train: Interactions, visible: sp.csr_matrix, ks, *, wmf_cfg,
                       select=None, fixed=frozenset(), neighbours_cfg=None, indexer_cfg=None,
                       metadata_cfg=None, references=REFERENCE_MODELS, scratch_parent: Path | None = None,
                       show_progress: bool | None = None) -> dict:
    """Every model's lists for the listeners of ``visible`` (``(n, train.n_songs)`` play counts
    over ``train``'s songs), at each ``k`` of ``ks``: ``{"lists": {model: {k: (n, k) int64}},
    "references": {name: describe}, "served": {...}, "wmf": config, "neighbours": config,
    "seeds_capped": listeners with more than MAX_SEEDS songs, "seconds": {...}}``."""
    from ..artifacts import read_json
    from ..collaborative.training import train_neighbours_run, train_wmf_run
    from ..indexing.build import build_bundle
    from ..indexing.config import IndexerConfig
    from ..recommender import Recommender

    ks = sorted({int(k) for k in ks})
    visible = sp.csr_matrix(visible)
    visible.sort_indices()
    scratch = scratch_workdir(workdir, train, train.matrix, ".protocol-", parent=scratch_parent)
    seconds: dict[str, float] = {}
    lists: dict[str, dict[int, np.ndarray]] = {}
    try:
        t0 = time.perf_counter()
        wmf_dir = train_wmf_run(scratch, wmf_cfg, select=select, fixed=fixed, show_progress=show_progress)
        nb_dir = train_neighbours_run(scratch, neighbours_cfg, select=select, show_progress=show_progress,
                                      metadata_cfg=metadata_cfg)
        icfg = replace(indexer_cfg or IndexerConfig(), default_lists=False, keep=1, acoustic=False)
        bundle_dir = build_bundle(scratch, icfg, metadata_cfg=metadata_cfg, show_progress=False)
        seconds["pmrs"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        with Recommender.open(bundle_dir) as rec:
            lists["pmrs"] = {k: served_lists(rec, visible, train.song_ids, k)
                             for k in tqdm(ks, desc="served lists", unit="k", disable=not show_progress, leave=False)}
            served = {"sources": rec.sources, "default_shares": {s.name: s.default_share for s in rec.info().sources}}
        seconds["evaluate_pmrs"] = round(time.perf_counter() - t0, 2)
        wmf_conf, nb_conf = read_json(wmf_dir / "config.json"), read_json(nb_dir / "config.json")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seed = int(wmf_conf.get("seed", 0))
    fitted = fit_references(train.matrix, [r for r in references if r != "implicit-bpr"], seed=seed, select=select)
    described = {name: ref.describe() for name, ref in fitted.items()}
    if "implicit-bpr" in references:
        described["implicit-bpr"] = {"settings": {}, "chosen_on_validation": False, "seconds": 0.0,
                                     "trials": [], "skipped": NO_FOLD_IN}
    for name, ref in fitted.items():
        if ref.fitted is None or ref.fitted.new_users is None:
            continue
        longest = reference_lists(ref.fitted.new_users, visible, max(ks))
        lists[name] = {k: longest[:, :k] for k in ks}
        seconds[name] = ref.seconds
    capped = int((np.diff(visible.indptr) > MAX_SEEDS).sum())
    for what in ("selection", "serving_share"):
        wmf_conf.pop(what, None)
        nb_conf.pop(what, None)
    return {"lists": lists, "references": described, "served": served, "wmf": wmf_conf, "neighbours": nb_conf,
            "seeds_capped": capped, "seconds": seconds}
