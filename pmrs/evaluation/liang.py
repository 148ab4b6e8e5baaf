"""``pmrs evaluate --protocol liang``: the MSD split of Liang et al. (2018, "Variational
Autoencoders for Collaborative Filtering"; their ``vae_cf`` preprocessing), on which EASE,
EDLAE, Mult-VAE and WMF were published (:mod:`pmrs.evaluation.published`).

The split, as ``vae_cf`` makes it:

1. plays are binarized (a stored pair is one interaction, whatever its count);
2. songs with fewer than ``min_song_users`` (200) users are removed, *then* users with fewer
   than ``min_user_songs`` (20) of the songs left (one pass each, in that order: a song may end
   under 200 users, as in the published 571,355 x 41,140);
3. the users, sorted by id, are shuffled by ``numpy.random.RandomState(seed).permutation``
   (seed 98765, ``vae_cf``'s); the last ``2 x heldout_users`` are held out, the first half of
   them for validation, the second for test (50,000 each at full size; capped at a quarter of
   the users each on smaller data);
4. the training songs are those the training users played; the held-out users' plays of other
   songs are dropped;
5. each held-out user with at least 5 songs has ``int(0.2 x n)`` of them, drawn without
   replacement by a ``RandomState(seed)`` reset before the users are walked in id order, to
   predict, the rest as fold-in; ``vae_cf`` walks a user's songs in file order, PMRS in song-id
   order, so the same seed draws other songs (the rule and the sizes are the same).

Metrics over the test users with a song to predict: Recall@20 and Recall@50 normalised by
min(k, n) (``capped_recall``) and NDCG@100. Every model's settings are chosen on a validation split
of the training users (PMRS's rule); the validation users are held out of training and reported
by count only. The report prints the published figures beside PMRS's, with their sources.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..errors import InvalidArgument
from ..interactions import INTERACTIONS_DIR, Interactions
from ..report import markdown_table
from .baselines import REFERENCE_MODELS, settings_text
from .metrics import per_user_metrics
from .newlisteners import new_listener_lists
from .published import LIANG

log = logging.getLogger(__name__)

#: The metrics of the protocol, in report order.
METRICS = ("recall@20", "recall@50", "ndcg@100")


@dataclass(frozen=True)
class LiangConfig:
    """The published protocol's settings (``[liang]`` in a TOML config)."""

    min_song_users: int = 200
    min_user_songs: int = 20
    heldout_users: int = 50_000
    test_fraction: float = 0.2
    min_split_songs: int = 5      # held-out users with fewer songs keep them all as fold-in
    seed: int = 98765

    def __post_init__(self) -> None:
        if self.min_song_users < 1 or self.min_user_songs < 1 or self.heldout_users < 1:
            raise InvalidArgument("min_song_users, min_user_songs and heldout_users must be at least 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidArgument(f"test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass
class LiangSplit:
    """The split: ``train`` (training users x training songs, binarized), its user and song ids,
    and for the validation and test users their fold-in and to-predict songs over the training
    songs (``(n, n_songs)`` CSR, 1 per song); ``counts`` the sizes at each step."""

    train: sp.csr_matrix
    train_user_ids: np.ndarray
    song_ids: np.ndarray
    validation_user_ids: np.ndarray
    validation_fold_in: sp.csr_matrix
    validation_predict: sp.csr_matrix
    test_user_ids: np.ndarray
    test_fold_in: sp.csr_matrix
    test_predict: sp.csr_matrix
    counts: dict


def _fold_in_split(rows: sp.csr_matrix, cfg: LiangConfig) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``vae_cf``'s ``split_train_test_proportion`` over the rows of ``rows`` (in order)."""
    rng = np.random.RandomState(cfg.seed)
    predict = np.zeros(rows.nnz, dtype=bool)
    for u in range(rows.shape[0]):
        lo, hi = rows.indptr[u], rows.indptr[u + 1]
        n = hi - lo
        if n >= cfg.min_split_songs:
            predict[lo + rng.choice(n, size=int(cfg.test_fraction * n), replace=False)] = True
    part = lambda keep: sp.csr_matrix((rows.data * keep, rows.indices, rows.indptr), shape=rows.shape, copy=True)
    fold, pred = part(~predict), part(predict)
    fold.eliminate_zeros()
    pred.eliminate_zeros()
    return fold, pred


def liang_split(matrix: sp.spmatrix, user_ids: np.ndarray, song_ids: np.ndarray,
                cfg: LiangConfig | None = None) -> LiangSplit:
    """The Liang et al. split (module docstring) of ``matrix`` (users x songs play counts, rows
    and columns named by the sorted ``user_ids`` and ``song_ids``). Raises ``InvalidArgument``
    when the filters leave too few users to hold any out."""
    cfg = cfg or LiangConfig()
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    counts = {"users": int(x.shape[0]), "songs": int(x.shape[1]), "pairs": int(x.nnz)}
    songs = np.flatnonzero(np.diff(x.tocsc().indptr) >= cfg.min_song_users)
    x = x[:, songs]
    users = np.flatnonzero(np.diff(x.indptr) >= cfg.min_user_songs)
    x = x[users].tocsr()
    counts.update(filtered_users=len(users), filtered_songs=len(songs), filtered_pairs=int(x.nnz))
    n = len(users)
    n_held = min(cfg.heldout_users, n // 4)
    if n_held < 1:
        raise InvalidArgument(f"{n} users are left with at least {cfg.min_user_songs} songs of the songs "
                              f"with at least {cfg.min_song_users} users: too few to hold out validation and "
                              f"test users (lower --min-song-users / --min-user-songs for small data)")
    perm = np.random.RandomState(cfg.seed).permutation(n)
    tr, vd, te = perm[:n - 2 * n_held], perm[n - 2 * n_held:n - n_held], perm[n - n_held:]
    tr, vd, te = np.sort(tr), np.sort(vd), np.sort(te)
    train = x[tr]
    kept = np.flatnonzero(np.diff(train.tocsc().indptr) > 0)
    train = train[:, kept].tocsr()
    vd_rows, te_rows = x[vd][:, kept].tocsr(), x[te][:, kept].tocsr()
    vd_fold, vd_pred = _fold_in_split(vd_rows, cfg)
    te_fold, te_pred = _fold_in_split(te_rows, cfg)
    counts.update(heldout_users=int(n_held), train_users=len(tr), train_songs=len(kept),
                  train_pairs=int(train.nnz), validation_users=len(vd), test_users=len(te),
                  test_fold_in_pairs=int(te_fold.nnz), test_predict_pairs=int(te_pred.nnz))
    uids = np.asarray(user_ids)[users]
    return LiangSplit(train, uids[tr], np.asarray(song_ids)[songs][kept], uids[vd], vd_fold, vd_pred,
                      uids[te], te_fold, te_pred, counts)


def liang_metrics(lists: dict[int, np.ndarray], predict: sp.csr_matrix) -> dict[str, float]:
    """The protocol's metrics of one model: ``lists[k]`` (``(n, k)`` columns) per cut-off,
    means over the rows of ``predict`` with a song to predict."""
    rows = np.diff(sp.csr_matrix(predict).indptr) > 0
    out = {}
    for name in METRICS:
        metric, k = name.split("@")
        key = "capped_recall" if metric == "recall" else metric
        values = per_user_metrics(lists[int(k)], predict, (int(k),))[f"{key}@{k}"][rows]
        out[name] = round(float(values.mean()), 5) if values.size else float("nan")
    return out


def evaluate_liang(workdir: str | Path, wmf_cfg, cfg: LiangConfig | None = None, run: str | None = None,
                   show_progress: bool | None = None, select=None, fixed=frozenset(), neighbours_cfg=None,
                   indexer_cfg=None, metadata_cfg=None, references=REFERENCE_MODELS) -> Path:
    """Run the protocol on ``<workdir>/interactions``; write ``reports/<run>/`` (``metrics.json``,
    ``report.md``); return its path."""
    from .holdout import REPORTS_DIR

    cfg = cfg or LiangConfig()
    workdir = Path(workdir)
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    split = liang_split(inter.matrix, inter.user_ids, inter.song_ids, cfg)
    train = Interactions(split.train.astype(np.int32), split.train_user_ids, split.song_ids)
    (workdir / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    out = workdir / REPORTS_DIR / (run or f"liang-{new_run_name()}")
    with staged_dir(out) as tmp:
        got = new_listener_lists(workdir, train, split.test_fold_in, (20, 50, 100), wmf_cfg=wmf_cfg, select=select,
                                 fixed=fixed, neighbours_cfg=neighbours_cfg, indexer_cfg=indexer_cfg,
                                 metadata_cfg=metadata_cfg, references=references, scratch_parent=workdir / REPORTS_DIR,
                                 show_progress=show_progress)
        models = {name: liang_metrics(lists, split.test_predict) for name, lists in got.pop("lists").items()}
        metrics = {"protocol": "liang", "config": asdict(cfg), "data": split.counts, "models": models,
                   "published": [asdict(p) for p in LIANG], **got}
        write_json(tmp / "metrics.json", metrics)
        write_text(tmp / "report.md", render_liang(metrics))
    return out


def published_rows(published, metrics: tuple[str, ...]) -> list[list]:
    """The published figures as report rows: model, kind, each metric (blank where not published), source."""
    return [[p["model"], "published", *[p["metrics"].get(m, "") for m in metrics], p["source"]] for p in published]


def side_by_side(metrics: dict, names: tuple[str, ...]) -> str:
    """Every model measured here beside the published figures, with their sources."""
    rows = [[name, "PMRS" if name == "pmrs" else "reference (measured here)", *[m[k] for k in names], ""]
            for name, m in metrics["models"].items()]
    return markdown_table(["model", "kind", *names, "source"], rows + published_rows(metrics["published"], names))


def references_lines(metrics: dict) -> list[str]:
    return ["Reference models' settings:", "",
            markdown_table(["reference", "settings"],
                           [[name, settings_text(ref)] for name, ref in metrics["references"].items()]), ""]


def render_liang(metrics: dict) -> str:
    d, c = metrics["data"], metrics["config"]
    return "\n".join([
        "# Liang et al. (2018) MSD protocol",
        "",
        f"{d['users']:,} users x {d['songs']:,} songs ({d['pairs']:,} pairs) binarized; songs with at least "
        f"{c['min_song_users']} users, then users with at least {c['min_user_songs']} of them: "
        f"{d['filtered_users']:,} users x {d['filtered_songs']:,} songs ({d['filtered_pairs']:,} pairs; published: "
        f"571,355 x 41,140). Seed {c['seed']}: {d['train_users']:,} training users over {d['train_songs']:,} songs, "
        f"{d['validation_users']:,} validation and {d['test_users']:,} test users, each held-out user's songs "
        f"{1 - c['test_fraction']:.0%} fold-in / {c['test_fraction']:.0%} to predict "
        f"({d['test_predict_pairs']:,} test pairs to predict).",
        "",
        side_by_side(metrics, METRICS),
        "",
        "Recall@k is hits / min(k, songs to predict), NDCG@100 is normalised by the ideal ranking, as Liang et al. "
        "define them. `pmrs` is what the server answers each test listener sent their fold-in songs as seeds "
        f"({metrics['seeds_capped']} listeners had more than the request's seed limit and sent their first by play "
        "count). Published rows are the papers' own figures on the full data; they compare with the measured rows "
        "only when this ran on the Taste Profile's train_triplets.txt.",
        "",
        *references_lines(metrics),
    ])
