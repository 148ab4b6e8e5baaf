"""``pmrs evaluate --diversity``: does mixing acoustic neighbours in make recommendations more
diverse, and at what cost in accuracy?

The hold-out split of ``--holdout`` is made; WMF is trained on its training part and the CNN on
that WMF's song factors (so no held-out play reaches either model); both go into a bundle built
by the real indexer in a scratch work directory, and recommendations come from the real serving
code (:func:`pmrs.serving.recommend.recommend_for_vector`) for every test user, excluding the
songs they played in training. For each ``acoustic_share`` in 0, 0.1, ..., 1 (and, at the default
share, for each MMR ``diversity`` weight) the report gives:

- recall@k of the held-out songs;
- intra-list acoustic distance: mean pairwise (1 - cosine) of the CNN embeddings in a list;
- genres per list, artists per list;
- catalog coverage: distinct songs recommended / songs in the bundle;
- long-tail share: songs outside the most played songs that make up 80% of training plays;
- cold share: songs with no training plays (audio only);
- novelty: mean self-information -log2(users who played the song / users), unplayed songs
  counted as played by one user;
- "sounds familiar, is new": the share of recommended songs acoustically close to the user's
  history (max cosine to a history song above the 95th percentile of random song pairs) whose
  genre is not among the history's genres, or whose artist is not among its artists.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np

from ..acoustic.model import CNNConfig
from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..interactions import INTERACTIONS_DIR, Interactions
from ..report import markdown_table
from ..collaborative.wmf import WMFConfig
from .scratch import scratch_workdir
from .split import HoldoutConfig, make_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiversityConfig:
    """Settings for ``pmrs evaluate --diversity`` (``[diversity]`` in a TOML config)."""

    k: int = 20
    shares: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    mmr_weights: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)
    mmr_share: float = 0.2
    max_users: int = 2000
    familiar_percentile: float = 95.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares", tuple(float(s) for s in self.shares))
        object.__setattr__(self, "mmr_weights", tuple(float(s) for s in self.mmr_weights))
        if not 1 <= self.k <= 1000:
            raise ValueError("k must be in 1..1000")


class _ListStats:
    """Accumulates the per-list measures of one setting."""

    def __init__(self, n_songs: int):
        self.seen = np.zeros(n_songs, dtype=bool)
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}   # of "mean_" keys: the lists that have the measure
        self.n_lists = 0
        self.n_items = 0

    def add(self, key: str, value: float, weight: int = 1) -> None:
        """``list_`` keys are averaged over lists, ``item_`` keys over list items, ``mean_`` keys
        over the lists they were added for."""
        self.sums[key] = self.sums.get(key, 0.0) + value * weight
        self.counts[key] = self.counts.get(key, 0) + 1

    def result(self) -> dict:
        out = {key: v / max(self.n_lists, 1) for key, v in self.sums.items() if key.startswith("list_")}
        out.update({key: v / max(self.n_items, 1) for key, v in self.sums.items() if key.startswith("item_")})
        out.update({key: v / self.counts[key] for key, v in self.sums.items() if key.startswith("mean_")})
        out["coverage"] = float(self.seen.mean())
        return {k.removeprefix("list_").removeprefix("item_").removeprefix("mean_"): float(v) for k, v in out.items()}


def evaluate_diversity(workdir: str | Path, wmf_cfg: WMFConfig, cnn_cfg: CNNConfig,
                       cfg: DiversityConfig | None = None, holdout: HoldoutConfig | None = None,
                       run: str | None = None, show_progress: bool | None = None) -> Path:
    """Run the sweep; write ``reports/<run>/`` (metrics.json, report.md, tradeoff.png)."""
    from ..acoustic.stages import predict_run, train_cnn_run
    from ..indexing import IndexerConfig, build_bundle
    from ..recommender import Recommender
    from ..collaborative.training import train_wmf_run

    cfg = cfg or DiversityConfig()
    holdout = holdout or HoldoutConfig()
    workdir = Path(workdir)
    t0 = time.perf_counter()
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    split = make_split(inter.matrix, holdout)
    scratch = scratch_workdir(workdir, inter, split.train, ".diversity-")
    try:
        train_wmf_run(scratch, wmf_cfg, run="split", show_progress=False)
        train_cnn_run(scratch, cnn_cfg, wmf_run="split", run="split", show_progress=show_progress)
        predict_run(scratch, "split", show_progress=False)
        bundle_dir = build_bundle(scratch, IndexerConfig(keep=1, metadata=False, neighbours=False),
                                  show_progress=False)  # the two-source sweep
        with Recommender.open(bundle_dir) as rec:
            result = _sweep(rec, inter, split, cfg)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    metrics = {"protocol": "diversity", "k": cfg.k,
               "config": {"diversity": asdict(cfg), "holdout": asdict(holdout), "wmf": asdict(wmf_cfg)},
               **result, "seconds": round(time.perf_counter() - t0, 1)}
    out = workdir / "reports" / (run or f"diversity-{new_run_name()}")
    with staged_dir(out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        _plot(metrics, tmp / "tradeoff.png")
        write_text(tmp / "report.md", render_report(metrics))
    return out


def _sweep(rec, inter: Interactions, split, cfg: DiversityConfig) -> dict:
    """The sweep over ``rec`` (a :class:`pmrs.Recommender` over a bundle trained on the split's
    training plays, so each user's played songs there are their training history)."""
    settings = [(("share", s), {"acoustic": s}, 0.0) for s in cfg.shares] + \
               [(("mmr", w), {"acoustic": cfg.mmr_share}, w) for w in cfg.mmr_weights]
    out = sweep_lists(rec, inter, split, settings, cfg.k, cfg.max_users, cfg.familiar_percentile)
    stats = out.pop("results")
    by_share = [{"acoustic_share": v, **stats[("share", v)]} for v in cfg.shares]
    by_mmr = [{"diversity": v, "acoustic_share": cfg.mmr_share, **stats[("mmr", v)]} for v in cfg.mmr_weights]
    return {**out, "by_acoustic_share": by_share, "by_mmr": by_mmr}


def sample_test_users(split, max_users: int, rng: np.random.Generator) -> np.ndarray:
    """The split's test users with at least one held-out song, at most ``max_users`` of them
    (drawn with ``rng``), ascending."""
    test = split.test.tocsr()
    users = np.asarray(split.test_users)
    users = users[np.diff(test.indptr)[users] > 0]
    if len(users) > max_users:
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    return users


def sweep_lists(rec, inter: Interactions, split, settings: Sequence[tuple[Hashable, Mapping[str, float], float]],
                k: int, max_users: int, familiar_percentile: float = 95.0) -> dict:
    """The list measures of the module docstring for each setting ``(key, shares, diversity)``:
    every test user of ``split`` (at most ``max_users``, drawn with seed 0) gets
    ``rec.recommend(user, k, shares=shares, diversity=diversity)``. ``rec`` is a
    :class:`pmrs.Recommender` over a bundle trained on the split's training plays (so a user's
    played songs there are their training history). Returns ``{"users", "bundle_songs",
    "cold_songs_in_bundle", "familiar_cosine_threshold", "results": {key: measures}}``."""
    bundle = rec.bundle
    rng = np.random.default_rng(0)
    test = split.test.tocsr()
    train = split.train.tocsr()
    users = sample_test_users(split, max_users, rng)
    # Bundle rows of the interaction songs (the bundle's universe also holds cold songs).
    inter_to_bundle = bundle.song_rows([s.decode() for s in inter.song_ids])
    n_bundle = bundle.n_songs
    # Popularity in training plays, on bundle rows.
    users_per_song = np.zeros(n_bundle)
    users_per_song[inter_to_bundle] = np.bincount(train.indices, minlength=train.shape[1])
    played_any = users_per_song > 0
    order = np.argsort(-users_per_song)
    cum = np.cumsum(users_per_song[order]) / max(users_per_song.sum(), 1)
    head = np.zeros(n_bundle, dtype=bool)
    head[order[: int(np.searchsorted(cum, 0.8)) + 1]] = True
    novelty = -np.log2(np.maximum(users_per_song, 1) / inter.n_users)
    meta = bundle.songs(np.arange(n_bundle))
    genre = np.array([m.get("genre", "") for m in meta], dtype=object)
    artist = np.array([m.get("artist", "") for m in meta], dtype=object)
    emb = bundle.embedding(np.arange(n_bundle)).astype(np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.maximum(norms, 1e-12)
    has_audio = norms[:, 0] > 0
    audio_rows = np.flatnonzero(has_audio)
    pairs = rng.choice(audio_rows, size=(5000, 2)) if len(audio_rows) > 1 else np.zeros((0, 2), int)
    threshold = float(np.percentile((emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(1), familiar_percentile)) \
        if len(pairs) else 1.0

    stats = {key: _ListStats(n_bundle) for key, _, _ in settings}
    for u in users:
        history = inter_to_bundle[train.indices[train.indptr[u]:train.indptr[u + 1]]]
        relevant = set(inter_to_bundle[test.indices[test.indptr[u]:test.indptr[u + 1]]].tolist())
        user_id = inter.user_ids[u].decode()
        hist_audio = history[has_audio[history]]
        hist_genres, hist_artists = set(genre[history]), set(artist[history])
        for key, shares, weight in settings:
            songs = rec.recommend(user_id, k=k, shares=shares, diversity=weight).song_ids
            rows = np.asarray(bundle.song_rows(songs), dtype=np.int64)
            st = stats[key]
            st.n_lists += 1
            st.n_items += len(rows)
            st.seen[rows] = True
            st.add("list_recall", len(relevant.intersection(rows.tolist())) / len(relevant))
            e = emb[rows]
            ea = e[has_audio[rows]]   # the distance is measured between songs that have audio
            if len(ea) > 1:
                sim = ea @ ea.T
                n = len(ea)
                st.add("mean_intra_list_distance", float((n * n - sim.sum()) / (n * (n - 1))))
            st.add("list_genres_per_list", len(set(genre[rows]) - {""}))
            st.add("list_artists_per_list", len(set(artist[rows]) - {""}))
            st.add("item_long_tail_share", float((~head[rows]).sum()))
            st.add("item_cold_share", float((~played_any[rows]).sum()))
            st.add("item_novelty", float(novelty[rows].sum()))
            if len(hist_audio) and len(rows):
                close = (e @ emb[hist_audio].T).max(axis=1) >= threshold
                close &= has_audio[rows]
                new_genre = np.array([g not in hist_genres for g in genre[rows]])
                new_artist = np.array([a not in hist_artists for a in artist[rows]])
                st.add("item_familiar_sound_new_genre", float((close & new_genre).sum()))
                st.add("item_familiar_sound_new_artist", float((close & new_artist).sum()))
    return {"users": int(len(users)), "bundle_songs": int(n_bundle),
            "cold_songs_in_bundle": int((~played_any & has_audio).sum()),
            "familiar_cosine_threshold": threshold,
            "results": {key: stats[key].result() for key, _, _ in settings}}


COLUMNS = ("recall", "intra_list_distance", "genres_per_list", "artists_per_list", "coverage",
           "long_tail_share", "cold_share", "novelty", "familiar_sound_new_genre",
           "familiar_sound_new_artist")


def render_report(m: dict) -> str:
    k = m["k"]
    headers = ["acoustic_share"] + [c if c != "recall" else f"recall@{k}" for c in COLUMNS]
    rows = [[r["acoustic_share"]] + [r.get(c, 0.0) for c in COLUMNS] for r in m["by_acoustic_share"]]
    mmr_rows = [[r["diversity"]] + [r.get(c, 0.0) for c in COLUMNS] for r in m["by_mmr"]]
    return "\n".join([
        "# Accuracy against diversity", "",
        f"{m['users']:,} test users, lists of {k}, over a bundle of {m['bundle_songs']:,} songs "
        f"({m['cold_songs_in_bundle']:,} with audio but no training plays). Recall counts the "
        "held-out songs found; the other columns describe the lists (see pmrs/evaluation/diversity.py).",
        "", "## Sweep over acoustic_share (no MMR re-ranking)", "", markdown_table(headers, rows), "",
        f"## Sweep over the MMR diversity weight (acoustic_share {m['by_mmr'][0]['acoustic_share'] if m['by_mmr'] else ''})",
        "", markdown_table(["diversity"] + headers[1:], mmr_rows), "",
        "![trade-off](tradeoff.png)", ""])


def _plot(m: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = m["by_acoustic_share"]
    x = [r["acoustic_share"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    ax = axes[0]
    ax.plot(x, [r["recall"] for r in rows], marker="o", color="tab:blue", label=f"recall@{m['k']}")
    ax.set_xlabel("acoustic_share")
    ax.set_ylabel(f"recall@{m['k']}", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, [r.get("intra_list_distance", 0) for r in rows], marker="s", color="tab:orange",
             label="intra-list acoustic distance")
    ax2.plot(x, [r.get("cold_share", 0) for r in rows], marker="^", color="tab:green", label="cold share")
    ax2.set_ylabel("distance / share")
    ax.set_title("Mixing in acoustic neighbours")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    ax = axes[1]
    for series, marker, label in ((rows, "o", "acoustic_share sweep"), (m["by_mmr"], "s", "MMR sweep")):
        ax.plot([r.get("intra_list_distance", 0) for r in series], [r["recall"] for r in series],
                marker=marker, label=label)
    ax.set_xlabel("intra-list acoustic distance")
    ax.set_ylabel(f"recall@{m['k']}")
    ax.set_title("Accuracy against diversity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
