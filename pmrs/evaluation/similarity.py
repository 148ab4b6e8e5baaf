"""``pmrs evaluate --similarity``: the seed paper's similarity experiments, measured.

A hold-out split is made as for ``--holdout``; WMF (and, where the work directory has audio
features, the CNN) are trained on its training plays in a scratch work directory, and the real
indexer builds two bundles there: the evaluated one (collaborative, acoustic, metadata) and, for
the ablation, one with the collaborative source and one metadata source per left-out part
(``metadata_no_tags``, ...). Every recommendation comes from :class:`pmrs.Recommender` over
them; metadata vectors from :mod:`pmrs.metadata`.

Similarities are cosines: metadata vectors are L2-normalised by construction; *acoustic
similarity* is the cosine of the acoustic source's vectors (the CNN's predicted latent factors,
the song's acoustic profile, which ``similar_songs(mode="acoustic")`` ranks by); collaborative
similarity the cosine of WMF song factors. Every threshold is a percentile of the
similarities of random song pairs of the same data (never a fixed number), and the report
states the values:

1. **Scaling**: each song's top-k neighbour similarities (mean, 10th/50th/90th percentiles, the
   share above the "very similar" threshold) and random pairs (mean, shares above "very
   similar" and below "very different"), for the metadata and acoustic sources as the songs
   grow (nested random subsets; metadata vectors rebuilt on each subset, the catalog's own IDF
   and SVD), for the collaborative source as the users grow (WMF refitted on nested subsets of
   users), and for metadata vectors as the features grow (artist, + genre, + tags, + year,
   + release). Thresholds: ``high_percentile`` / ``low_percentile`` of random pairs in the whole
   data (the full feature set for metadata), held fixed across sizes.
2. **Agreement**: acoustic against metadata similarity of the songs with both: a 2-D histogram
   and correlations over random pairs and over acoustic neighbour pairs; *diverse candidates*
   are acoustic top-k neighbours at or above the ``high_percentile`` of random pairs' acoustic
   similarity whose metadata similarity is at or below the ``far_percentile`` of random pairs'
   metadata similarity; their count with a bootstrap confidence interval (query songs resampled)
   and examples.
3. **Ground truth**: precision@k and recall@k of ``similar_songs`` in every mode against the
   Last.fm similars of the queried songs (those in the bundle), beside a random ranking's
   expected values on the same queries.
4. **Feature importance**: each metadata part left out in turn: hold-out recall@k of
   metadata-only recommendation (``shares={source: 1}``) and precision@k against the similars.
5. **Three-source diversity sweep**: recall, genres per list, intra-list acoustic distance,
   long-tail and cold share over a grid of acoustic and metadata shares
   (:func:`pmrs.evaluation.diversity.sweep_lists`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from ..acoustic.model import CNNConfig
from ..artifacts import new_run_name, staged_dir, write_json, write_text
from ..audio.store import FEATURES_FILE
from ..catalog import CATALOG_FILE, Catalog
from ..interactions import INTERACTIONS_DIR, Interactions
from ..metadata import MetadataConfig, metadata_matrix, metadata_vectors, reduce_vectors
from ..indexing.config import DEFAULT_METADATA_SHARE
from ..serving import contract as C
from ..collaborative.wmf import WMFConfig, train_wmf
from .diversity import sample_test_users, sweep_lists
from .scratch import scratch_workdir
from .split import HoldoutConfig, make_split

log = logging.getLogger(__name__)

#: Metadata features as they grow in the scaling experiment (the issue's order), each step
#: adding parts to the one before; the last adds the release, so it is the full default set.
FEATURE_STEPS = (("artist", ("artist",)), ("+ genre", ("genre",)), ("+ tags", ("tags",)),
                 ("+ year", ("decade",)), ("+ release", ("release",)))
NO_LASTFM_TAGS = ("the catalog has no Last.fm tags: the metadata source uses artist, release, genre and "
                  "decade only (give `pmrs ingest` the Last.fm data to add them)")
NO_LASTFM_SIMILARS = "no Last.fm similars in the catalog: nothing to compare SimilarSongs with"
NO_AUDIO = "no audio features in the work directory: no acoustic source"


@dataclass(frozen=True)
class SimilarityConfig:
    """Settings for ``pmrs evaluate --similarity`` (``[similarity]`` in a TOML config).

    k: neighbours per song and songs per list. fractions: shares of songs (users) in the scaling
    experiment (1.0 is always added). query_songs: songs whose neighbours are measured per
    setting (all when fewer). pairs: random song pairs for thresholds, histogram and
    correlations. high_percentile, low_percentile: "very similar" / "very different" thresholds,
    as percentiles of random pairs' similarity; far_percentile: "far by metadata" for diverse
    candidates. bootstrap, confidence: resamples and level of the interval on the diverse count.
    max_queries: songs queried against the Last.fm similars. max_users: test users for hold-out
    recall (ablation and sweep). share_step: grid step of the acoustic and metadata shares.
    examples: diverse pairs shown. cnn_max_epochs: at most this many epochs for the split's CNN
    (0: ``[cnn]`` as it is; the demo caps it to keep its run short).
    """

    k: int = 10
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    query_songs: int = 1000
    pairs: int = 20_000
    high_percentile: float = 95.0
    low_percentile: float = 5.0
    far_percentile: float = 50.0
    bootstrap: int = 1000
    confidence: float = 0.95
    max_queries: int = 300
    max_users: int = 300
    share_step: float = 0.25
    examples: int = 5
    cnn_max_epochs: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        fr = sorted({float(f) for f in self.fractions} | {1.0})
        object.__setattr__(self, "fractions", tuple(fr))
        if not 1 <= self.k <= 1000:
            raise ValueError("k must be in 1..1000")
        if fr[0] <= 0 or fr[-1] > 1:
            raise ValueError("fractions must be in (0, 1]")
        if not 0 <= self.low_percentile < self.high_percentile <= 100 or not 0 <= self.far_percentile <= 100:
            raise ValueError("percentiles must be in [0, 100], low below high")
        if not 0 < self.confidence < 1 or self.bootstrap < 1:
            raise ValueError("confidence must be in (0, 1) and bootstrap at least 1")
        if not 0 < self.share_step <= 1:
            raise ValueError("share_step must be in (0, 1]")
        if min(self.query_songs, self.pairs, self.max_queries, self.max_users) < 1:
            raise ValueError("query_songs, pairs, max_queries and max_users must be at least 1")
        if self.cnn_max_epochs < 0:
            raise ValueError("cnn_max_epochs must be >= 0 (0: the [cnn] setting)")


# -- measures on vectors -------------------------------------------------------------------------

def unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows L2-normalised (float32; zero rows stay zero)."""
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def random_pairs(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random pairs ``(i, j)`` of distinct rows of ``n`` (empty when ``n`` < 2)."""
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = rng.integers(0, n, count)
    j = (i + rng.integers(1, n, count)) % n   # uniform over the other rows
    return i, j


def pair_similarity(a: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a[i], a[j]) if len(i) else np.zeros(0, np.float32)


def top_neighbours(v: np.ndarray, queries: np.ndarray, k: int, chunk: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's ``k`` most similar other rows of ``v`` (inner products, best first):
    ``(similarities (q, k'), rows (q, k'))``, ``k' = min(k, n - 1)``; ``chunk`` queries at a
    time (default: a block of at most 2^25 similarities, 128 MB)."""
    n = len(v)
    chunk = chunk or max(1, min(1024, 2**25 // max(n, 1)))
    k = min(k, n - 1)
    sims, rows = np.zeros((len(queries), max(k, 0)), np.float32), np.zeros((len(queries), max(k, 0)), np.int64)
    if k <= 0:
        return sims, rows
    for s in range(0, len(queries), chunk):
        q = queries[s:s + chunk]
        block = v[q] @ v.T
        block[np.arange(len(q)), q] = -np.inf
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        val = np.take_along_axis(block, part, 1)
        order = np.argsort(-val, axis=1, kind="stable")
        rows[s:s + len(q)] = np.take_along_axis(part, order, 1)
        sims[s:s + len(q)] = np.take_along_axis(val, order, 1)
    return sims, rows


def pair_thresholds(v: np.ndarray, cfg: SimilarityConfig, rng: np.random.Generator) -> dict:
    """"Very similar" and "very different" thresholds of unit vectors ``v`` (rows with a vector):
    the ``high_percentile`` and ``low_percentile`` of random pairs' similarity."""
    sims = pair_similarity(v, *random_pairs(len(v), cfg.pairs, rng))
    if not len(sims):
        return {"very_similar": 1.0, "very_different": -1.0}
    return {"very_similar": float(np.percentile(sims, cfg.high_percentile)),
            "very_different": float(np.percentile(sims, cfg.low_percentile))}


def neighbour_stats(v: np.ndarray, thresholds: Mapping[str, float], cfg: SimilarityConfig,
                    rng: np.random.Generator) -> dict:
    """Top-k neighbour and random-pair similarity statistics of unit vectors ``v`` (rows with
    no vector are left out) under fixed ``thresholds``."""
    v = v[np.abs(v).sum(axis=1) > 0]
    n = len(v)
    hi, lo = thresholds["very_similar"], thresholds["very_different"]
    out: dict = {"songs": int(n)}
    if n < 2:
        return out
    queries = np.arange(n) if n <= cfg.query_songs else np.sort(rng.choice(n, cfg.query_songs, replace=False))
    top, _ = top_neighbours(v, queries, cfg.k)
    pairs = pair_similarity(v, *random_pairs(n, cfg.pairs, rng))
    out.update({"queries": int(len(queries)), "top_mean": float(top.mean()),
                "top_p10": float(np.percentile(top, 10)), "top_p50": float(np.percentile(top, 50)),
                "top_p90": float(np.percentile(top, 90)), "top1_mean": float(top[:, 0].mean()),
                "neighbours_very_similar": float((top >= hi).mean()),
                "pairs_mean": float(pairs.mean()), "pairs_very_similar": float((pairs >= hi).mean()),
                "pairs_very_different": float((pairs <= lo).mean())})
    return out


def bootstrap_sum(values: np.ndarray, resamples: int, confidence: float, rng: np.random.Generator
                  ) -> tuple[float, float]:
    """Percentile bootstrap interval of ``values.sum()`` (``values`` resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return 0.0, 0.0
    sums = np.array([values[rng.integers(0, len(values), len(values))].sum() for _ in range(resamples)])
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(sums, tail)), float(np.percentile(sums, 100 - tail))


# -- the catalog ---------------------------------------------------------------------------------

@dataclass
class CatalogData:
    """Every catalog song (sorted ids) with its fields, Last.fm tags and similars."""

    song_ids: list[str]
    fields: list[dict]
    tags: list[dict]
    similars: dict[str, dict[str, float]]

    @property
    def songs_with_tags(self) -> int:
        return sum(bool(t) for t in self.tags)


def read_catalog(path: Path) -> CatalogData:
    with Catalog(path) as cat:
        items = list(cat.items())
        tag_of = dict(cat.items_tags())
        similars = dict(cat.items_similars())
    return CatalogData([s for s, _ in items], [f for _, f in items], [tag_of.get(s, {}) for s, _ in items],
                       similars)


def metadata_variants(data: CatalogData, mcfg: MetadataConfig) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The ``metadata`` source's vectors and one set per left-out part (``metadata_no_<part>``),
    from one full matrix of :func:`pmrs.metadata.metadata_matrix` (leaving a part's columns out
    is giving it weight 0: each part is normalised on its own); and each part's feature count."""
    full, cols = metadata_matrix(data.fields, data.tags, mcfg)
    out = {C.METADATA: reduce_vectors(full, mcfg)}
    present = [p for p, c in cols.items() if c.stop > c.start]   # (a part the catalog lacks: nothing to leave out)
    if len(present) > 1:
        for part in present:
            out[f"{C.METADATA}_no_{part}"] = reduce_vectors(_columns(full, cols, [p for p in cols if p != part]), mcfg)
    return out, {p: c.stop - c.start for p, c in cols.items()}


def _columns(full: sp.csr_matrix, cols: Mapping[str, slice], parts: Sequence[str]) -> sp.csr_matrix:
    idx = np.concatenate([np.arange(cols[p].start, cols[p].stop) for p in parts]) if parts else np.zeros(0, int)
    return full[:, idx]


# -- the experiments -----------------------------------------------------------------------------

def scaling(data: CatalogData, mcfg: MetadataConfig, acoustic: np.ndarray | None, matrix: sp.csr_matrix,
            wmf_cfg: WMFConfig, cfg: SimilarityConfig) -> dict:
    """Experiment 1. ``acoustic``: unit acoustic vectors of the songs with audio; ``matrix``:
    the users x songs plays the collaborative side is refitted on."""
    rng = np.random.default_rng(cfg.seed)
    out: dict = {"thresholds": {}, "songs": {}, "users": {}, "features": []}
    n = len(data.song_ids)
    perm = rng.permutation(n)
    full_meta = metadata_vectors(data.fields, data.tags, mcfg)
    out["thresholds"][C.METADATA] = thr = pair_thresholds(full_meta[np.abs(full_meta).sum(1) > 0], cfg, rng)
    rows = []
    for f in cfg.fractions:
        sub = np.sort(perm[:max(2, int(round(f * n)))])
        v = full_meta if f == 1.0 else metadata_vectors([data.fields[i] for i in sub], [data.tags[i] for i in sub], mcfg)
        rows.append({"fraction": f, **neighbour_stats(v, thr, cfg, rng)})
    out["songs"][C.METADATA] = rows
    if acoustic is not None and len(acoustic) > 1:
        out["thresholds"][C.ACOUSTIC] = thr = pair_thresholds(acoustic, cfg, rng)
        perm_a = rng.permutation(len(acoustic))
        out["songs"][C.ACOUSTIC] = [
            {"fraction": f, **neighbour_stats(acoustic[np.sort(perm_a[:max(2, int(round(f * len(acoustic))))])],
                                              thr, cfg, rng)} for f in cfg.fractions]
    # the collaborative side as users grow: WMF refitted on nested subsets of users
    users = rng.permutation(matrix.shape[0])
    fits = {}
    for f in cfg.fractions:
        sub = matrix[np.sort(users[:max(2, int(round(f * len(users))))])]
        played = np.flatnonzero(np.diff(sub.tocsc().indptr) > 0)
        model = train_wmf(sp.csr_matrix(sub[:, played]), wmf_cfg, show_progress=False)
        fits[f] = (int(sub.shape[0]), unit_rows(model.song_factors))
    out["thresholds"][C.COLLABORATIVE] = thr = pair_thresholds(fits[1.0][1], cfg, rng)
    out["users"][C.COLLABORATIVE] = [{"fraction": f, "users": fits[f][0], **neighbour_stats(fits[f][1], thr, cfg, rng)}
                                     for f in cfg.fractions]
    # metadata features as they grow
    full, cols = metadata_matrix(data.fields, data.tags, mcfg)
    parts: list[str] = []
    for label, add in FEATURE_STEPS:
        add = [p for p in add if p in cols and cols[p].stop > cols[p].start]
        if not add:   # a part the catalog lacks (no tags, no years...) changes nothing
            continue
        parts += add
        v = reduce_vectors(_columns(full, cols, parts), mcfg)
        out["features"].append({"features": label, "parts": list(parts),
                                **neighbour_stats(v, out["thresholds"][C.METADATA], cfg, rng)})
    return out


def agreement(rec, cfg: SimilarityConfig) -> dict:
    """Experiment 2 over the bundle of ``rec``: acoustic against metadata similarity."""
    b = rec.bundle
    if not (b.has_source(C.ACOUSTIC) and b.has_source(C.METADATA)):
        return {"available": False, "note": NO_AUDIO}
    rng = np.random.default_rng(cfg.seed)
    emb, m = _all_vectors(b, C.ACOUSTIC), _all_vectors(b, C.METADATA)
    both = np.flatnonzero((np.abs(emb).sum(1) > 0) & (np.abs(m).sum(1) > 0))
    if len(both) < 3:
        return {"available": False, "note": "fewer than 3 songs have both an acoustic and a metadata vector"}
    a_v, m_v = emb[both], m[both]
    i, j = random_pairs(len(both), cfg.pairs, rng)
    a_pairs, m_pairs = pair_similarity(a_v, i, j), pair_similarity(m_v, i, j)
    close = float(np.percentile(a_pairs, cfg.high_percentile))
    far = float(np.percentile(m_pairs, cfg.far_percentile))
    n = len(both)
    queries = np.arange(n) if n <= cfg.query_songs else np.sort(rng.choice(n, cfg.query_songs, replace=False))
    a_top, nb = top_neighbours(a_v, queries, cfg.k)
    m_top = np.einsum("qd,qkd->qk", m_v[queries], m_v[nb])
    diverse = (a_top >= close) & (m_top <= far)
    per_song = diverse.sum(axis=1)
    lo, hi = bootstrap_sum(per_song, cfg.bootstrap, cfg.confidence, rng)
    s_lo, s_hi = bootstrap_sum(per_song > 0, cfg.bootstrap, cfg.confidence, rng)
    by_far = []   # how the count depends on the "far" threshold (the headline uses far_percentile)
    for pct in sorted({25.0, 50.0, 75.0, 90.0, float(cfg.far_percentile)}):
        t = float(np.percentile(m_pairs, pct))
        by_far.append({"percentile": pct, "metadata_far_threshold": t,
                       "diverse_pairs": int(((a_top >= close) & (m_top <= t)).sum())})
    q_idx, k_idx = np.nonzero(diverse)
    pairs = {}
    for q, kk in zip(q_idx.tolist(), k_idx.tolist()):
        key = tuple(sorted((int(both[queries[q]]), int(both[nb[q, kk]]))))
        pairs[key] = (float(a_top[q, kk]), float(m_top[q, kk]))
    genre = [s["genre"] for s in b.songs(both)]
    gpos = {int(r): g for r, g in zip(both.tolist(), genre)}
    other_genre = [gpos[x] != gpos[y] for x, y in pairs] if pairs else []
    best = sorted(pairs.items(), key=lambda kv: kv[1][1] - kv[1][0])[:cfg.examples]
    examples = []
    for (x, y), (sa, sm) in best:
        sx, sy = b.songs([x, y])
        examples.append({"song": _brief(sx), "neighbour": _brief(sy), "acoustic": round(sa, 4),
                         "metadata": round(sm, 4)})
    h, a_edges, m_edges = np.histogram2d(a_pairs, m_pairs, bins=20)
    return {"available": True, "songs": int(n), "queries": int(len(queries)), "pairs": int(len(a_pairs)),
            "pearson_random_pairs": _corr(a_pairs, m_pairs), "spearman_random_pairs": _spearman(a_pairs, m_pairs),
            "pearson_neighbour_pairs": _corr(a_top.ravel(), m_top.ravel()),
            "acoustic_close_threshold": close, "metadata_far_threshold": far,
            "neighbour_pairs": int(a_top.size), "acoustically_close_neighbour_pairs": int((a_top >= close).sum()),
            "diverse_pairs": int(per_song.sum()), "diverse_pairs_ci": [lo, hi],
            "diverse_unique_pairs": len(pairs), "songs_with_a_diverse_neighbour": int((per_song > 0).sum()),
            "songs_with_a_diverse_neighbour_ci": [s_lo, s_hi],
            "diverse_share_of_close": float(per_song.sum() / max(int((a_top >= close).sum()), 1)),
            "diverse_other_genre_share": float(np.mean(other_genre)) if other_genre else 0.0,
            "diverse_pairs_by_far_percentile": by_far,
            "metadata_neighbour_pairs_median": float(np.median(m_top)),
            "examples": examples,
            "histogram": {"counts": h.astype(int).tolist(), "acoustic_edges": a_edges.tolist(),
                          "metadata_edges": m_edges.tolist()}}


def _all_vectors(b, name: str) -> np.ndarray:
    """Unit vectors of source ``name`` for every song row of bundle ``b`` (zero without one)."""
    have, vectors = b.song_vectors(name, np.arange(b.n_songs))
    out = np.zeros((b.n_songs, vectors.shape[1]), np.float32)
    out[have] = vectors
    return unit_rows(out)


def _brief(song: dict) -> dict:
    return {k: song[k] for k in ("song_id", "title", "artist", "genre")}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    return _corr(rankdata(a), rankdata(b))


def ground_truth(rec, similars: Mapping[str, Mapping[str, float]], modes: Sequence[str],
                 cfg: SimilarityConfig) -> dict:
    """Experiment 3: precision@k and recall@k of ``rec.similar_songs`` in each of ``modes``
    against the Last.fm similars, on at most ``max_queries`` songs (drawn with ``cfg.seed``, so
    every call with the same similars queries the same songs)."""
    from ..recommender import NotFound

    b = rec.bundle
    relevant: dict[str, set[str]] = {}
    for song, sims in similars.items():
        if b.song_row(song) is None:
            continue
        rel = {s for s in sims if s != song and b.song_row(s) is not None}
        if rel:
            relevant[song] = rel
    if not relevant:
        return {"available": False, "note": NO_LASTFM_SIMILARS}
    rng = np.random.default_rng(cfg.seed)
    songs = sorted(relevant)
    if len(songs) > cfg.max_queries:
        songs = [songs[i] for i in np.sort(rng.choice(len(songs), cfg.max_queries, replace=False))]
    others = b.n_songs - 1
    by_mode = {}
    for mode in modes:
        p = r = rp = rr = 0.0
        answered = 0
        for song in songs:
            try:
                got = rec.similar_songs(song, k=cfg.k, mode=mode).song_ids
            except NotFound:
                continue
            rel = relevant[song]
            hits = len(rel.intersection(got))
            answered += 1
            p += hits / cfg.k
            r += hits / len(rel)
            rp += len(rel) / others            # a random list's expected precision and recall
            rr += min(cfg.k, others) / others
        n = max(answered, 1)
        by_mode[mode] = {"answered": answered, "answered_share": answered / len(songs),
                         f"precision@{cfg.k}": p / n, f"recall@{cfg.k}": r / n,
                         f"random_precision@{cfg.k}": rp / n, f"random_recall@{cfg.k}": rr / n,
                         "lift": (p / rp) if rp else 0.0}
    return {"available": True, "queries": len(songs), "songs_with_similars": len(relevant),
            "mean_similars": float(np.mean([len(relevant[s]) for s in songs])), "modes": by_mode}


def holdout_recall(rec, inter: Interactions, split, sources: Sequence[str], cfg: SimilarityConfig) -> dict:
    """Hold-out recall@k of recommendations drawn from one source only (``shares={s: 1}``)."""
    test = split.test.tocsr()
    users = sample_test_users(split, cfg.max_users, np.random.default_rng(0))
    out = {}
    for name in sources:
        total = 0.0
        for u in users:
            relevant = {inter.song_ids[j].decode() for j in test.indices[test.indptr[u]:test.indptr[u + 1]]}
            got = rec.recommend(inter.user_ids[u].decode(), k=cfg.k, shares={name: 1.0}).song_ids
            total += len(relevant.intersection(got)) / len(relevant)
        out[name] = total / max(len(users), 1)
    return {"users": int(len(users)), "recall": out}


def feature_importance(rec, inter: Interactions, split, similars, features: Mapping[str, int],
                       cfg: SimilarityConfig) -> dict:
    """Experiment 4: the full metadata source against each ``metadata_no_<part>`` one."""
    names = [n for n in rec.sources if n == C.METADATA or n.startswith(f"{C.METADATA}_no_")]
    recall = holdout_recall(rec, inter, split, names, cfg)
    truth = ground_truth(rec, similars, names, cfg)
    rows = []
    for name in names:
        part = name.removeprefix(f"{C.METADATA}_no_") if name != C.METADATA else None
        row = {"source": name, "left_out": part or "(none)", "features_left_out": features.get(part, 0) if part else 0,
               f"holdout_recall@{cfg.k}": recall["recall"][name]}
        if truth["available"]:
            row[f"similars_precision@{cfg.k}"] = truth["modes"][name][f"precision@{cfg.k}"]
        rows.append(row)
    return {"users": recall["users"], "similars": truth.get("available", False),
            "similars_queries": truth.get("queries", 0),
            "note": None if truth["available"] else truth["note"], "rows": rows}


def diversity_sweep(rec, inter: Interactions, split, cfg: SimilarityConfig) -> dict:
    """Experiment 5: the list measures over a grid of acoustic and metadata shares."""
    steps = np.round(np.arange(0, 1 + 1e-9, cfg.share_step), 6).tolist()
    has_acoustic = rec.bundle.has_source(C.ACOUSTIC)
    grid = [(a, m) for a in (steps if has_acoustic else [0.0]) for m in steps if a + m <= 1 + 1e-9]
    settings = [((a, m), {C.ACOUSTIC: a, C.METADATA: m} if has_acoustic else {C.METADATA: m}, 0.0)
                for a, m in grid]
    out = sweep_lists(rec, inter, split, settings, cfg.k, cfg.max_users)
    results = out.pop("results")
    rows = [{"collaborative_share": round(1 - a - m, 6), "acoustic_share": a, "metadata_share": m,
             **results[(a, m)]} for a, m in grid]
    return {**out, "rows": rows}


# -- the command ---------------------------------------------------------------------------------

def evaluate_similarity(workdir: str | Path, wmf_cfg: WMFConfig, cnn_cfg: CNNConfig,
                        cfg: SimilarityConfig | None = None, holdout: HoldoutConfig | None = None,
                        metadata_cfg: MetadataConfig | None = None, run: str | None = None,
                        show_progress: bool | None = None) -> Path:
    """Run the five experiments; write ``reports/<run>/`` (metrics.json, report.md, PNG plots)."""
    from ..acoustic.stages import predict_run, train_cnn_run
    from ..indexing import IndexerConfig, SourceInput, build_bundle
    from ..recommender import Recommender
    from ..collaborative.training import train_wmf_run
    from .similarity_report import plot_all, render_report

    cfg = cfg or SimilarityConfig()
    holdout = holdout or HoldoutConfig()
    mcfg = metadata_cfg or MetadataConfig()
    if cfg.cnn_max_epochs:
        cnn_cfg = replace(cnn_cfg, max_epochs=min(cnn_cfg.max_epochs, cfg.cnn_max_epochs))
    workdir = Path(workdir)
    t0 = time.perf_counter()
    if not (workdir / CATALOG_FILE).is_file():
        raise FileNotFoundError(f"{workdir / CATALOG_FILE} not found: the similarity experiments need the "
                                "catalog (run `pmrs ingest` with the metadata files)")
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    data = read_catalog(workdir / CATALOG_FILE)
    audio = (workdir / FEATURES_FILE).exists()
    notes = [] if data.songs_with_tags else [NO_LASTFM_TAGS]
    notes += [] if data.similars else [NO_LASTFM_SIMILARS]
    notes += [] if audio else [NO_AUDIO]
    for note in notes:
        log.warning("%s", note)
    variants, features = metadata_variants(data, mcfg)
    width = max((len(s.encode()) for s in data.song_ids), default=1)
    ids = np.array([s.encode() for s in data.song_ids], dtype=f"S{width}")
    icfg = IndexerConfig(keep=2, default_lists=False, metadata=False)
    sources = [SourceInput(name, ids, v, C.METADATA_SPACE, covers_cold=True,
                           default_share=DEFAULT_METADATA_SHARE if name == C.METADATA else 0.0,
                           origin=str(workdir / CATALOG_FILE), settings=asdict(mcfg))
               for name, v in variants.items()]
    split = make_split(inter.matrix, holdout)
    scratch = scratch_workdir(workdir, inter, split.train, ".similarity-")
    timings = {}
    try:
        t = time.perf_counter()
        train_wmf_run(scratch, wmf_cfg, run="split", show_progress=False)
        # The ablation's bundle: collaborative and the metadata variants only, built before the
        # CNN run exists (so without an acoustic source, on purpose). Its variants live apart
        # from the evaluated bundle because a blend short of one source's songs fills the rest
        # from any other source's candidates, and a variant must never be one of them.
        build_log = logging.getLogger("pmrs.indexing.build")
        level = build_log.level
        build_log.setLevel(logging.ERROR)   # (its "no CNN run" warning is the intent here)
        try:
            ablation_dir = build_bundle(scratch, icfg, extra_sources=sources, show_progress=False)
        finally:
            build_log.setLevel(level)
        if audio:
            train_cnn_run(scratch, cnn_cfg, wmf_run="split", run="split", show_progress=show_progress)
            predict_run(scratch, "split", show_progress=False)
        bundle_dir = build_bundle(scratch, icfg, extra_sources=[s for s in sources if s.name == C.METADATA],
                                  show_progress=False)
        timings["models_and_bundles"] = round(time.perf_counter() - t, 1)
        with Recommender.open(bundle_dir) as rec, Recommender.open(ablation_dir) as ablation:
            b = rec.bundle
            acoustic = None
            if b.has_source(C.ACOUSTIC):
                acoustic = _all_vectors(b, C.ACOUSTIC)
                acoustic = acoustic[np.abs(acoustic).sum(1) > 0]
            results = {}
            steps = (("scaling", lambda: scaling(data, mcfg, acoustic, split.train.tocsr(), wmf_cfg, cfg)),
                     ("agreement", lambda: agreement(rec, cfg)),
                     ("ground_truth", lambda: ground_truth(rec, data.similars, [*_modes(rec)], cfg)),
                     ("feature_importance", lambda: feature_importance(ablation, inter, split, data.similars,
                                                                       features, cfg)),
                     ("diversity", lambda: diversity_sweep(rec, inter, split, cfg)))
            for name, step in steps:
                t = time.perf_counter()
                results[name] = step()
                timings[name] = round(time.perf_counter() - t, 1)
                log.info("similarity experiment %s: %.1f s", name, timings[name])
            counts = {"songs": len(data.song_ids), "songs_with_tags": data.songs_with_tags,
                      "songs_with_similars": len(data.similars), "bundle_songs": b.n_songs,
                      "songs_with_audio": int(len(acoustic)) if acoustic is not None else 0,
                      "users": inter.n_users, "test_users": len(split.test_users),
                      "metadata_features": features, "sources": rec.sources}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    metrics = {"protocol": "similarity", "k": cfg.k, "notes": notes, "data": counts,
               "config": {"similarity": asdict(cfg), "holdout": asdict(holdout), "wmf": asdict(wmf_cfg),
                          "metadata": asdict(mcfg), "cnn": asdict(cnn_cfg) if audio else None},
               **results, "seconds": round(time.perf_counter() - t0, 1), "seconds_by_step": timings}
    out = workdir / "reports" / (run or f"similarity-{new_run_name()}")
    with staged_dir(out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        plot_all(metrics, tmp)
        write_text(tmp / "report.md", render_report(metrics))
    return out


def _modes(rec) -> list[str]:
    """The SimilarSongs modes compared with the similars: each source, then mixed."""
    from ..recommender import MIXED

    return [*rec.sources, MIXED]


__all__ = ["FEATURE_STEPS", "SimilarityConfig", "agreement", "bootstrap_sum", "diversity_sweep",
           "evaluate_similarity", "feature_importance", "ground_truth", "metadata_variants", "neighbour_stats",
           "pair_thresholds", "random_pairs", "read_catalog", "scaling", "top_neighbours", "unit_rows"]
