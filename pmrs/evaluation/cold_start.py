"""``pmrs evaluate --cold-start``: the protocol of van den Oord et al. (2013).

A share of the songs that have both plays and audio is held out of WMF training entirely. WMF is
trained on the remaining plays; the CNN (and the MFCC ridge baseline) learn to predict the
remaining songs' WMF factors from audio, then predict the held-out songs' factors l'_j. For every
test user (a user who played at least one held-out song), the held-out songs are ranked by
x_u . l'_j and the metrics ask whether the songs the user did play come first. Compared:

- random scores;
- MFCC ridge: ridge regression from per-clip MFCC summary statistics (bag of features);
- CNN (audio only): the latent-factor CNN on log-mel windows, averaged over the clip;
- metadata only and combined: the cold vector ``pmrs.acoustic.cold`` makes of what the catalog
  knows (the artist's, the release's, the tags' and the Last.fm similars' played songs), without
  and with the CNN's prediction, weights chosen on the CNN's validation songs; "combined" is what
  a bundle serves for a cold song with audio;
- genre mean (when labels exist): each held-out song gets the mean factors of the training songs
  of its genre, a diagnostic of how much genre alone explains;
- upper bound: WMF trained with the held-out songs' plays, x_u . y_j.

The genre head is reported on the held-out songs: accuracy, mean confidence per genre, and a
confusion matrix (PNG).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..acoustic.baseline import fit_ridge
from ..acoustic.cold import PARTS, CatalogKnowledge, TooFewSongs, choose_weights, cold_parts, combine
from ..acoustic.model import CNNConfig
from ..acoustic.stages import StoreLogMels, genre_labels
from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..audio.store import FEATURES_FILE, FeatureStore
from ..catalog import CATALOG_FILE
from ..indexing.config import ACOUSTIC_SHARE_NOT_VALIDATED
from ..interactions import INTERACTIONS_DIR, Interactions
from ..report import markdown_table
from ..collaborative.wmf import WMFConfig, train_wmf
from .metrics import evaluate_scores
from .split import HoldoutSplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColdStartConfig:
    """Settings for the cold-start protocol (``[cold_start]`` in a TOML config)."""

    held_out_share: float = 0.2   # of the songs with plays and audio
    max_test_users: int = 20_000
    seed: int = 0
    ks: tuple[int, ...] = (10, 50, 500)
    batch_size: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if not 0 < self.held_out_share < 1:
            raise ValueError("held_out_share must be in (0, 1)")


def _ranking_metrics(scores: np.ndarray, relevant: sp.csr_matrix, ks) -> dict:
    """Metrics of dense ``(n_users, n_held)`` scores against relevance over the held-out songs."""
    n_users, n_held = relevant.shape
    split = HoldoutSplit(train=sp.csr_matrix((n_users, n_held), dtype=np.float32),
                         test=relevant, test_users=np.arange(n_users, dtype=np.int64))
    ks = tuple(k for k in ks if k <= n_held) or (n_held,)
    return evaluate_scores(lambda rows: scores[rows], split, ks=ks, batch_size=1024,
                           show_progress=False)


def evaluate_cold_start(workdir: str | Path, wmf_cfg: WMFConfig, cnn_cfg: CNNConfig,
                        cfg: ColdStartConfig | None = None, run: str | None = None,
                        show_progress: bool | None = None) -> Path:
    """Run the protocol on the work directory; write ``reports/<run>/``; return its path."""
    from ..acoustic.predict import predict_clips
    from ..acoustic.train import train_cnn

    cfg = cfg or ColdStartConfig()
    workdir = Path(workdir)
    t_start = time.perf_counter()
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    song_ids = [s.decode() for s in inter.song_ids]
    counts = inter.matrix.tocsr()
    timings: dict[str, float] = {}

    with FeatureStore(workdir / FEATURES_FILE, readonly=True) as store:
        have = set(store.song_ids())
        with_audio = np.array([s in have for s in song_ids])
        candidates = np.flatnonzero(with_audio & (np.diff(counts.tocsc().indptr) > 0))
        if len(candidates) < 10:
            raise ValueError(f"only {len(candidates)} songs have both plays and audio features; "
                             "the cold-start protocol needs more (run `pmrs extract`)")
        rng = np.random.default_rng(cfg.seed)
        n_held = max(2, int(round(cfg.held_out_share * len(candidates))))
        held = np.sort(rng.choice(candidates, size=n_held, replace=False))
        is_held = np.zeros(counts.shape[1], dtype=bool)
        is_held[held] = True

        # Test users: those who played a held-out song (capped, seeded).
        relevant_all = counts[:, held].tocsr()
        users = np.flatnonzero(np.diff(relevant_all.indptr) > 0)
        if len(users) > cfg.max_test_users:
            users = np.sort(rng.choice(users, size=cfg.max_test_users, replace=False))
        relevant = relevant_all[users]
        relevant.data = np.ones_like(relevant.data)

        t = time.perf_counter()
        full = train_wmf(counts, wmf_cfg, show_progress=False)          # the upper bound
        warm_counts = counts.multiply(~is_held[None, :]).tocsr()
        warm_counts.eliminate_zeros()
        partial = train_wmf(warm_counts, wmf_cfg, show_progress=False)  # never saw the held songs
        timings["wmf_seconds"] = round(time.perf_counter() - t, 2)

        train_songs = np.flatnonzero(with_audio & ~is_held & (np.diff(warm_counts.tocsc().indptr) > 0))
        train_ids = [song_ids[i] for i in train_songs]
        held_ids = [song_ids[i] for i in held]
        labels, genre_names = genre_labels(workdir / CATALOG_FILE, train_ids + held_ids)

        t = time.perf_counter()
        cnn, history = train_cnn(StoreLogMels(store, train_ids),
                                 (train_ids, partial.song_factors[train_songs]),
                                 {s: labels[s] for s in train_ids if s in labels} or None,
                                 cnn_cfg, show_progress=show_progress)
        pred = predict_clips(cnn, StoreLogMels(store, held_ids), show_progress=False)
        timings["cnn_seconds"] = round(time.perf_counter() - t, 2)

        # the cold vector a bundle serves: audio combined with the catalog, weights chosen on
        # the CNN's validation songs (pmrs.acoustic.cold, as `pmrs train-cnn` chooses them)
        t = time.perf_counter()
        val_ids = history.pop("validation_songs")
        val_pred = predict_clips(cnn, StoreLogMels(store, val_ids), show_progress=False)["factors"]
        knowledge = CatalogKnowledge.read(workdir / CATALOG_FILE)
        played = np.flatnonzero(np.diff(warm_counts.tocsc().indptr) > 0)
        played_ids = [song_ids[i] for i in played]
        parts = cold_parts(knowledge, played_ids, partial.song_factors[played], held_ids, pred["factors"])
        try:
            chosen = choose_weights(knowledge, played_ids, partial.song_factors[played], val_ids, val_pred)
            cold_vectors = {name: combine(parts, chosen[name]["weights"]) for name in ("metadata_only", "combined")}
        except TooFewSongs as exc:   # (a bundle serves the CNN's prediction alone, and so is it scored)
            chosen, cold_vectors = {"why": str(exc)}, {}
        timings["cold_weights_seconds"] = round(time.perf_counter() - t, 2)

        t = time.perf_counter()
        ridge = fit_ridge(store.mfcc_summaries(train_ids), partial.song_factors[train_songs],
                          seed=cfg.seed)
        ridge_factors = ridge.predict(store.mfcc_summaries(held_ids))
        timings["ridge_seconds"] = round(time.perf_counter() - t, 2)

    x_u = partial.user_factors[users]
    predictions = {
        "random": rng.random((len(users), n_held)).astype(np.float32),
        "mfcc_ridge": x_u @ ridge_factors.T,
        "cnn": x_u @ pred["factors"].T,
        **{name: x_u @ v.T for name, v in cold_vectors.items()},
    }
    if labels:
        g_train = np.array([labels.get(s, -1) for s in train_ids])
        means = {g: partial.song_factors[train_songs[g_train == g]].mean(axis=0)
                 for g in np.unique(g_train[g_train >= 0])}
        g_held = [labels.get(s, -1) for s in held_ids]
        overall = partial.song_factors[train_songs].mean(axis=0)
        predictions["genre_mean"] = x_u @ np.stack([means.get(g, overall) for g in g_held]).T
    predictions["upper_bound"] = full.user_factors[users] @ full.song_factors[held].T

    models = {name: _ranking_metrics(np.ascontiguousarray(s, dtype=np.float32), relevant, cfg.ks)
              for name, s in predictions.items()}
    auc = {name: m["auc"] for name, m in models.items()}
    gap = auc["upper_bound"] - auc["random"]
    closed = {name: (auc[name] - auc["random"]) / gap if gap > 0 else None
              for name in models if name not in ("random", "upper_bound")}

    genre = None
    if pred.get("genre_probs") is not None and labels:
        genre = genre_report([labels.get(s, -1) for s in held_ids], pred["genre_probs"], genre_names)

    metrics = {
        "protocol": "cold-start",
        "data": {"users": inter.n_users, "songs": inter.n_songs, "songs_with_audio": int(with_audio.sum()),
                 "candidate_songs": int(len(candidates)), "held_out_songs": int(n_held),
                 "train_songs": int(len(train_songs)), "test_users": int(len(users)),
                 "held_out_pairs": int(relevant.nnz)},
        "config": {"cold_start": asdict(cfg), "wmf": asdict(wmf_cfg), "cnn": asdict(cnn.config)},
        "models": models,
        "auc_gap_closed": closed,
        "ridge_alpha": ridge.alpha,
        "cold_weights": {**chosen, "held_out_coverage": parts.coverage()},
        "cnn_training": {k: v for k, v in history.items() if k != "epochs"},
        "genre_head": genre,
        "seconds": {**timings, "total": round(time.perf_counter() - t_start, 2)},
    }
    out = workdir / "reports" / (run or f"cold-start-{new_run_name()}")
    with staged_dir(out) as tmp:
        if genre is not None and genre["songs"]:
            _plot_confusion(np.array(genre["confusion"]), genre_names, tmp / "genre_confusion.png")
        write_json(tmp / "metrics.json", metrics)
        write_text(tmp / "report.md", render_report(metrics))
    return out


def genre_report(true: list[int], probs: np.ndarray, names: list[str]) -> dict:
    """Accuracy, mean confidence per genre and the confusion matrix (rows: true genre)."""
    true_a = np.asarray(true)
    mask = (true_a >= 0) & (true_a < probs.shape[1])
    t, p = true_a[mask], probs[mask]
    guess = p.argmax(axis=1)
    n = probs.shape[1]
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (t, guess), 1)
    per_genre = {}
    for g in range(n):
        rows = t == g
        if rows.any():
            per_genre[names[g] if g < len(names) else str(g)] = {
                "songs": int(rows.sum()),
                "accuracy": float((guess[rows] == g).mean()),
                "mean_confidence_true_genre": float(p[rows, g].mean()),
                "mean_confidence_predicted": float(p[rows].max(axis=1).mean()),
            }
    return {"songs": int(mask.sum()), "accuracy": float((guess == t).mean()) if len(t) else None,
            "per_genre": per_genre, "confusion": confusion.tolist(), "genres": names}


def render_report(m: dict) -> str:
    d = m["data"]
    ks = [k for k in m["config"]["cold_start"]["ks"] if f"map@{k}" in m["models"]["random"]]
    cols = ["auc"] + [f"{n}@{k}" for k in ks for n in ("map", "recall")]
    rows = [[LABELS.get(name, name)] + [v[c] for c in cols] + [_pct(m["auc_gap_closed"].get(name))]
            for name, v in m["models"].items()]
    lines = [
        "# Cold-start evaluation", "",
        f"{d['held_out_songs']:,} of {d['candidate_songs']:,} songs with plays and audio held out of "
        f"WMF training; the CNN and the ridge baseline learned from the other {d['train_songs']:,}. "
        f"{d['test_users']:,} test users rank the held-out songs ({d['held_out_pairs']:,} plays to find).",
        "", markdown_table(["model"] + cols + ["AUC gap closed"], rows), "",
        "AUC gap closed: (AUC - AUC random) / (AUC upper bound - AUC random).", "",
    ]
    w = m.get("cold_weights")
    if w and w.get("why"):
        lines += ["## Cold-start weights: not chosen", "", f"{w['why']}.", ""]
    elif w:
        parts = [p for p in (*PARTS, "mean") if any(p in f["weights"] for f in w.values() if "weights" in f)]
        cover = w.get("held_out_coverage") or {}
        lines += ["## Cold-start weights, chosen on validation", "",
                  f"Least squares against the WMF factors of {w['combined']['songs']:,} validation songs "
                  "(played songs the CNN did not train on, their parts computed as if they were cold); "
                  "a missing part counts as the mean factors (pmrs.acoustic.cold). Coverage: the share "
                  "of held-out songs that have the part.", "",
                  markdown_table(["combination"] + parts + ["validation loss", "mean predictor's"],
                                 [[LABELS.get(name, name)] + [f["weights"].get(p, "") for p in parts]
                                  + [f["loss"], f["loss_mean_predictor"]]
                                  for name, f in w.items() if "weights" in f]
                                 + [["coverage"] + [cover.get(p, "") for p in parts] + ["", ""]]), ""]
    lines += [f"Served share of the acoustic source: {ACOUSTIC_SHARE_NOT_VALIDATED}.", ""]
    g = m.get("genre_head")
    if g and g["accuracy"] is None:
        lines += ["## Genre head on the held-out songs: accuracy not measured", "",
                  "No held-out song has a genre label, so the genre head's accuracy is not measured.", ""]
    elif g:
        lines += [f"## Genre head on the held-out songs: accuracy {g['accuracy']:.3f}", "",
                  markdown_table(["genre", "songs", "accuracy", "mean confidence (true genre)"],
                                 [[name, v["songs"], v["accuracy"], v["mean_confidence_true_genre"]]
                                  for name, v in g["per_genre"].items()]),
                  "", "![confusion matrix](genre_confusion.png)", ""]
    return "\n".join(lines)


#: The report's names of its rows.
LABELS = {"cnn": "audio only (CNN)", "audio_only": "audio only (CNN)", "metadata_only": "metadata only", "combined": "combined (served)",
          "genre_mean": "genre mean", "mfcc_ridge": "MFCC ridge", "upper_bound": "upper bound (WMF)"}


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def _plot_confusion(confusion: np.ndarray, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.sum(axis=1, keepdims=True)
    share = confusion / np.maximum(rows, 1)
    n = len(confusion)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), dpi=110)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = names if len(names) == n else [str(i) for i in range(n)]
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title("Genre head on held-out songs")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true genre's songs")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
