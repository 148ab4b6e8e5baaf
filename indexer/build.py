"""``indexer build``: the latest WMF and CNN runs -> ``bundles/<version>/``, then ``bundles/CURRENT``.

The bundle layout, the manifest and the switch-over are specified in docs/SERVING.md; this module
writes exactly that. In short: the song universe is the union of the WMF run's songs and the songs
the CNN predicted factors for (sorted bytes ids; a song's *row* is its index there); the users,
their factors and the CSR of each user's played song rows come from the WMF run and the work
directory's interactions; one FAISS index per vector set (collaborative: WMF song factors;
acoustic: CNN-predicted factors) with its recall@10 against exact search measured and its search
parameter raised until the target recall is reached; a snapshot of ``catalog.lmdb``; and a
``manifest.json`` with the sha256 of every file.

Everything is written under a hidden ``bundles/.<version>.*.partial`` directory, fsynced and
renamed to ``bundles/<version>``; only then is ``bundles/CURRENT`` replaced (temp file +
``os.replace``). A failure or an interrupt at any point removes the partial directory and leaves
``CURRENT`` and every older bundle as they were. One build at a time holds ``bundles/.lock``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np
from tqdm.auto import tqdm

from pmrs.acoustic.runs import CNN_DIR, load_predictions
from pmrs.acoustic.stages import PREDICTIONS_DIR
from pmrs.artifacts import (list_runs, new_run_name, read_json, resolve_run, save_npy, sha256_file,
                            write_json)
from pmrs.catalog import CATALOG_FILE
from pmrs.interactions import INTERACTIONS_DIR, Interactions
from pmrs.serving.bundle import Bundle, list_files
from pmrs.serving.default_lists import compute_default_lists
from pmrs.serving.recommend import MAX_K
from pmrs.wmf import WMF_DIR, load_run

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

FORMAT_VERSION = 1
BUNDLES_DIR = "bundles"
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
INDEX_NAMES = ("collaborative", "acoustic")
RECALL_AT = 10
#: Where the search-parameter doubling starts and stops (an IVF's nprobe stops at its nlist).
NPROBE_START = 1
EF_SEARCH_START, EF_SEARCH_MAX = 16, 4096
#: Index structures built for a metric (graphs): their specs get the L2 reduction of the inner product.
L2_STRUCTURES = ("HNSW", "NSG")


@dataclass(frozen=True)
class IndexerConfig:
    """Settings for ``indexer build`` (``[indexer]`` in a TOML config).

    exact_threshold: up to this many vectors an index is exact (``Flat``, i.e. ``IndexFlatIP``).
    collaborative_spec, acoustic_spec: a FAISS ``index_factory`` string overriding the automatic
        choice for that index (``Flat`` up to ``exact_threshold``, else ``IVF{nlist},Flat``).
        A graph spec (HNSW, NSG) is built as an L2 index over l2-augmented vectors.
    l2_reduction: build every approximate spec (anything but exact ``Flat``) as an L2 index over
        l2-augmented vectors, not only graphs. An inner-product IVF assigns queries to the lists
        whose centroids have the largest inner products, which favours long centroids; after the
        reduction every vector has the same norm and k-means lists follow direction. On the
        full-shape benchmark that took the lists probed for recall@10 0.95 from 12% to under 1%
        (docs/ARCHITECTURE.md). ``False`` keeps IVF and other non-graph specs inner-product.
    nlist: inverted lists of the automatic IVF spec; ``None``: about ``4 * sqrt(n)``.
    max_probe_fraction: when the *automatic* IVF spec needs more than this share of its lists
        probed to reach ``target_recall``, it scans about as much as exact search does: the
        index is rebuilt as ``Flat`` (exact) and the manifest records why (``fallback_from``).
    target_recall: recall@10 against exact search that the search parameter is raised to reach.
    recall_queries: sampled user queries for the recall measurement (and half as many song
        queries). 2,000 keeps the sampling error of recall@10 near 0.002: with 500, the smallest
        passing nprobe on the sample gave 0.942-0.946 on other users.
    keep: complete bundles kept after a build (the one ``CURRENT`` names is never deleted).
    seed: query sampling and k-means initialisation.
    default_lists: compute every known user's answer to the default Recommend request (the next
        three settings, no filters, played songs excluded) and every song's answer to the default
        SimilarSongs request (mixed mode, ``default_k`` and ``default_acoustic_share``, no
        re-ranking, no filters) into the bundle, so the server answers those requests by lookup
        (``pmrs.serving.default_lists``). A server whose default
        ``acoustic_share`` gives another acoustic quota, or whose default ``diversity`` differs,
        computes its answers as for any other request.
    default_k, default_acoustic_share, default_diversity: the request the lists answer (``k`` 0
        in a request means 10).
    list_workers: processes computing the default lists; ``None``: one per core, at most 2.
    """

    exact_threshold: int = 50_000
    collaborative_spec: str | None = None
    acoustic_spec: str | None = None
    nlist: int | None = None
    l2_reduction: bool = True
    max_probe_fraction: float = 0.5
    target_recall: float = 0.95
    recall_queries: int = 2000
    keep: int = 3
    seed: int = 0
    default_lists: bool = True
    default_k: int = 10
    default_acoustic_share: float = 0.2
    default_diversity: float = 0.0
    list_workers: int | None = None

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError("keep must be at least 1 (the bundle just built)")
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError("target_recall must be in (0, 1]")
        if self.recall_queries < 1 or self.exact_threshold < 0:
            raise ValueError("recall_queries must be >= 1 and exact_threshold >= 0")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError("nlist must be at least 1")
        if not 0.0 < self.max_probe_fraction <= 1.0:
            raise ValueError("max_probe_fraction must be in (0, 1]")
        if not 1 <= self.default_k <= MAX_K:
            raise ValueError(f"default_k must be between 1 and {MAX_K}")
        if not (0.0 <= self.default_acoustic_share <= 1.0 and 0.0 <= self.default_diversity <= 1.0):
            raise ValueError("default_acoustic_share and default_diversity must be in [0, 1]")
        if self.list_workers is not None and self.list_workers < 1:
            raise ValueError("list_workers must be at least 1")


# ---------------------------------------------------------------------------------------------
# Index specs, the L2 reduction, recall


def choose_spec(n_vectors: int, spec: str | None, cfg: IndexerConfig) -> str:
    """The spec an index over ``n_vectors`` gets: ``spec`` when given, else ``Flat`` up to
    ``cfg.exact_threshold`` vectors, else ``IVF{nlist},Flat`` with nlist about 4 * sqrt(n)."""
    if spec:
        return spec.strip()
    if n_vectors <= cfg.exact_threshold:
        return "Flat"
    nlist = cfg.nlist or max(1, int(round(4 * math.sqrt(n_vectors))))
    return f"IVF{nlist},Flat"


def needs_l2_augmentation(spec: str, l2_reduction: bool = True) -> bool:
    """Whether ``spec`` is built as an L2 index over vectors with one extra coordinate (DESIGN.md,
    "Approximate search with inner products"): always for a graph built for a metric (HNSW, NSG),
    for any other approximate spec when ``l2_reduction``, never for exact ``Flat``."""
    top = [part.strip().upper() for part in spec.split(",")]
    if top == ["FLAT"]:
        return False
    # an IVF whose coarse quantizer is a graph ("IVF4096_HNSW32,Flat") is not itself a graph
    graph = any(part.startswith(L2_STRUCTURES) for part in top if not part.startswith("IVF"))
    return graph or l2_reduction


def l2_augment(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """Append ``sqrt(M^2 - ||y||^2)`` to each row (M: the largest norm), so that the L2 distance
    to a query ``[q, 0]`` is ``||q||^2 + M^2 - 2 q.y``: smallest distance = largest inner product.
    Returns ``((n, k + 1) float32, M)``."""
    v = np.asarray(vectors, dtype=np.float32)
    sq = np.einsum("ij,ij->i", v, v, dtype=np.float64)
    m2 = float(sq.max()) if len(sq) else 0.0
    extra = np.sqrt(np.maximum(m2 - sq, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([v, extra[:, None]])), math.sqrt(m2)


def augment_queries(queries: np.ndarray) -> np.ndarray:
    """Queries for an l2-augmented index: a 0 appended to each row."""
    q = np.asarray(queries, dtype=np.float32)
    return np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), dtype=np.float32)]))


def exact_top(queries: np.ndarray, vectors: np.ndarray, top: int) -> np.ndarray:
    """Ids ``(n_queries, top)`` of the largest inner products, best first (brute force:
    ``faiss.knn``, one BLAS product per block of queries; 3,000 queries over 384,546 vectors take
    1.5 s where numpy's argpartition took 21 s)."""
    top = min(top, len(vectors))
    q = np.ascontiguousarray(queries, dtype=np.float32)
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if top == 0 or not len(q):
        return np.empty((len(q), top), dtype=np.int64)
    _, ids = faiss.knn(q, v, top, metric=faiss.METRIC_INNER_PRODUCT)
    return ids.astype(np.int64, copy=False)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` found in the same row of ``found``."""
    if truth.size == 0:
        return 1.0
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth))
    return hits / truth.size


def index_kind(index: faiss.Index) -> str:
    """``ivf``, ``hnsw``, ``flat`` or ``other``: which search parameter the index has."""
    if faiss.try_extract_index_ivf(index) is not None:
        return "ivf"
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    if hasattr(inner, "hnsw"):
        return "hnsw"
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    return "other"


def search_param_name(index: faiss.Index) -> str | None:
    return {"ivf": "nprobe", "hnsw": "efSearch"}.get(index_kind(index))


def apply_search_params(index: faiss.Index, params: dict) -> None:
    """Set search parameters (``{"nprobe": 32}``) with FAISS's ``ParameterSpace``."""
    ps = faiss.ParameterSpace()
    for name, value in params.items():
        ps.set_index_parameter(index, name, value)


def build_index(vectors: np.ndarray, spec: str, queries: np.ndarray | dict[str, np.ndarray],
                cfg: IndexerConfig) -> tuple[faiss.Index, dict]:
    """Build the index ``spec`` over ``vectors`` (ids = positions), then raise its search parameter
    (doubling) until recall@10 on ``queries`` against exact inner-product search reaches
    ``cfg.target_recall`` or the parameter is exhausted. ``queries``: one array, or named groups
    (``{"users": ..., "songs": ...}``) that must *each* reach the target: the recall is the
    smallest group's (user vectors are harder queries than song vectors, and Recommend asks with
    users while SimilarSongs asks with songs). Returns ``(index, manifest entry)`` (the entry
    lacks ``file``)."""
    t0 = time.perf_counter()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, k = vectors.shape
    if n == 0:
        raise ValueError("cannot build an index over no vectors")
    augmented = needs_l2_augmentation(spec, cfg.l2_reduction)
    if augmented:
        base, max_norm = l2_augment(vectors)
        metric = faiss.METRIC_L2
    else:
        base, max_norm, metric = vectors, None, faiss.METRIC_INNER_PRODUCT
    try:
        index = faiss.index_factory(base.shape[1], spec, metric)
    except RuntimeError as exc:
        why = str(exc).splitlines()[-1]
        if augmented:
            why += (f" (the spec is built over the {base.shape[1]}-d l2-augmented vectors: k + 1; choose "
                    "parameters for that dimension, or set l2_reduction = false for a non-graph spec)")
        raise ValueError(f"FAISS cannot build index spec {spec!r}: {why}") from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        if n < ivf.nlist:
            raise ValueError(f"index spec {spec!r} has {ivf.nlist} lists for only {n} vectors; "
                             "use fewer lists or an exact index")
        ivf.cp.seed = cfg.seed
        if n < 39 * ivf.nlist:
            log.warning("%s: %d vectors for %d lists (FAISS suggests at least 39 per list)",
                        spec, n, ivf.nlist)
        ivf.cp.min_points_per_centroid = 1  # warned above, once, instead of FAISS's stderr line
    if not index.is_trained:
        log.info("training %s on %d vectors", spec, n)
        index.train(base)
    index.add(base)
    add_seconds = time.perf_counter() - t0

    top = min(RECALL_AT, n)
    groups = queries if isinstance(queries, dict) else {"queries": queries}
    groups = {name: np.asarray(g, dtype=np.float32).reshape(-1, k) for name, g in groups.items() if len(g)}
    bounds = np.cumsum([0] + [len(g) for g in groups.values()])
    queries = np.vstack(list(groups.values()))
    truth = exact_top(queries, vectors, top)
    q = augment_queries(queries) if augmented else np.ascontiguousarray(queries, dtype=np.float32)
    param = search_param_name(index)
    if param == "nprobe":
        value, limit = min(NPROBE_START, ivf.nlist), ivf.nlist
    elif param == "efSearch":
        value, limit = max(EF_SEARCH_START, top), max(EF_SEARCH_MAX, top)
    else:
        value = limit = None
    tried: list[dict] = []

    def measure(v) -> float:
        if param:
            apply_search_params(index, {param: v})
        t1 = time.perf_counter()
        _, found = index.search(q, top)
        by_group = {name: recall_at(found[a:b], truth[a:b]) for name, a, b in zip(groups, bounds[:-1], bounds[1:])}
        r = min(by_group.values())
        tried.append({**({param: v} if param else {}), "recall_at_10": round(r, 4),
                      **({"recall_at_10_by_queries": {name: round(x, 4) for name, x in by_group.items()}}
                         if len(by_group) > 1 else {}),
                      "ms_per_query": round((time.perf_counter() - t1) * 1e3 / len(q), 4)})
        log.info("%s%s: recall@%d %.4f", spec, f" {param}={v}" if param else "", top, r)
        return r

    # doubling until the target is reached (or the parameter is exhausted) ...
    recall, failed = measure(value), None
    while param and recall < cfg.target_recall and value < limit:
        failed, value = value, min(value * 2, limit)
        recall = measure(value)
    # ... then bisection between the last failing and the first passing value, to within 1/8
    if param and recall >= cfg.target_recall and failed is not None:
        lo, hi, hi_recall = failed, value, recall
        while hi - lo > max(1, lo // 8):
            mid = (lo + hi) // 2
            r = measure(mid)
            if r >= cfg.target_recall:
                hi, hi_recall = mid, r
            else:
                lo = mid
        value, recall = hi, hi_recall
        apply_search_params(index, {param: value})
    if recall < cfg.target_recall:
        log.warning("%s reaches recall@%d %.4f < target %.2f%s; recorded as measured", spec, top,
                    recall, cfg.target_recall, f" even at {param}={value}" if param else "")
    entry = {"spec": spec, "metric": "inner_product",
             "transform": "l2_augmented" if augmented else "none",
             "faiss_metric": "L2" if augmented else "inner_product",
             "search_params": {param: value} if param else {},
             "vectors": n, "dimension": k, "index_dimension": int(base.shape[1]),
             "recall_at_10": round(recall, 4), "recall_queries": len(q),
             "recall_queries_by_kind": {name: len(g) for name, g in groups.items()},
             "recall_at_10_by_queries": next((t.get("recall_at_10_by_queries", {}) for t in reversed(tried)
                                              if not param or t.get(param) == value), {}),
             "target_recall": cfg.target_recall,
             "recall_by_param": tried,
             "add_seconds": round(add_seconds, 3), "build_seconds": round(time.perf_counter() - t0, 3)}
    if augmented:
        entry["max_norm"] = max_norm
    return index, entry


def build_chosen_index(vectors: np.ndarray, spec: str | None, queries: np.ndarray | dict[str, np.ndarray],
                       cfg: IndexerConfig) -> tuple[faiss.Index, dict]:
    """``build_index`` with ``choose_spec``'s spec. An automatic IVF that must probe more than
    ``cfg.max_probe_fraction`` of its lists to reach the target recall is no faster than exact
    search, so it is replaced by ``Flat``; the entry's ``fallback_from`` says what was measured."""
    chosen = choose_spec(len(vectors), spec, cfg)
    index, entry = build_index(vectors, chosen, queries, cfg)
    ivf = faiss.try_extract_index_ivf(index)
    if spec or ivf is None:
        return index, entry
    nprobe = entry["search_params"].get("nprobe", 0)
    if nprobe <= cfg.max_probe_fraction * ivf.nlist and entry["recall_at_10"] >= cfg.target_recall:
        return index, entry
    reason = (f"{chosen} needed nprobe {nprobe} of {ivf.nlist} lists for recall@10 "
              f"{entry['recall_at_10']:.3f} (target {cfg.target_recall}): more than "
              f"{cfg.max_probe_fraction:.0%} of the lists, no faster than exact search")
    log.warning("%s; using an exact index instead", reason)
    del index
    index, flat = build_index(vectors, "Flat", queries, cfg)
    flat["fallback_from"] = {k: entry[k] for k in ("spec", "search_params", "recall_at_10", "recall_by_param",
                                                   "build_seconds")}
    flat["fallback_from"]["reason"] = reason
    flat["build_seconds"] = round(flat["build_seconds"] + entry["build_seconds"], 3)
    return index, flat


# ---------------------------------------------------------------------------------------------
# Inputs


def _sorted_ids(ids: np.ndarray, what: str) -> np.ndarray | None:
    """``None`` when ``ids`` is sorted and unique, else the order that sorts it (duplicates: error)."""
    ids = np.asarray(ids)
    if ids.dtype.kind != "S":
        raise TypeError(f"{what}: ids must be fixed-width bytes, got dtype {ids.dtype}")
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    if bool((s[1:] == s[:-1]).any()):
        raise ValueError(f"{what}: duplicate ids")
    return order


def _rows_of(universe: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of ``ids`` in the sorted ``universe``; every id must be there."""
    rows = np.searchsorted(universe, ids)
    ok = rows < len(universe)
    ok[ok] = universe[rows[ok]] == np.asarray(ids)[ok]
    if not ok.all():
        raise ValueError(f"{int((~ok).sum())} ids missing from the song universe")
    return rows


def _resolve_cnn(workdir: Path, cnn_run: str | None) -> Path | None:
    parent = workdir / CNN_DIR
    if cnn_run:
        return resolve_run(parent, cnn_run)
    runs = list_runs(parent)
    return runs[-1] if runs else None


def _acoustic_inputs(cnn_dir: Path, wmf_dir: Path, k: int) -> dict:
    pred_dir = cnn_dir / PREDICTIONS_DIR
    if not (pred_dir / "song_ids.npy").is_file():
        raise FileNotFoundError(f"CNN run {cnn_dir} has no predictions; run `pmrs predict "
                                f"--cnn-run {cnn_dir.name}` first")
    history = read_json(cnn_dir / "history.json") if (cnn_dir / "history.json").is_file() else {}
    trained_on = history.get("wmf_run")
    if trained_on and Path(trained_on).name != wmf_dir.name:
        raise ValueError(
            f"CNN run {cnn_dir.name} predicts the factors of WMF run {Path(trained_on).name}, but the "
            f"bundle's WMF run is {wmf_dir.name}; their latent spaces differ. Pass --wmf-run "
            f"{Path(trained_on).name}, or retrain the CNN on {wmf_dir.name} (`pmrs train-cnn`, `pmrs predict`)")
    pred = dict(load_predictions(pred_dir))
    pred["genres"] = list(history.get("genres") or [])
    pred["source"] = str(cnn_dir)
    if pred["factors"].shape[1] != k:
        raise ValueError(f"CNN predictions have {pred['factors'].shape[1]} factors, the WMF run {k}")
    return pred


def _check_acoustic(pred: dict) -> dict:
    """Sort and validate predictions (or an injected override) as the bundle stores them."""
    ids = np.asarray(pred["song_ids"])
    if ids.dtype.kind == "U":
        ids = np.char.encode(ids, "ascii")
    order = _sorted_ids(ids, "acoustic song ids")
    take = (lambda a: a) if order is None else (lambda a: np.asarray(a)[order])
    factors = np.asarray(take(pred["factors"]), dtype=np.float32)
    n = len(ids)
    if factors.ndim != 2 or len(factors) != n:
        raise ValueError(f"acoustic factors have shape {factors.shape} for {n} songs")
    emb = pred.get("embeddings")
    if emb is None:  # an injected override without embeddings: the factors' directions
        emb = factors
    emb = np.asarray(take(emb), dtype=np.float32)
    if len(emb) != n:
        raise ValueError(f"embeddings have {len(emb)} rows for {n} songs")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.where(norms > 0, emb / np.where(norms > 0, norms, 1), 0).astype(np.float32)
    genre = pred.get("genre_probs")
    genres = list(pred.get("genres") or [])
    if genre is not None:
        genre = np.asarray(take(genre), dtype=np.float32)
        if len(genre) != n:
            raise ValueError(f"genre_probs has {len(genre)} rows for {n} songs")
        if genres and len(genres) != genre.shape[1]:
            raise ValueError(f"{len(genres)} genre names for {genre.shape[1]} genre probabilities")
    return {"song_ids": ids if order is None else ids[order], "factors": factors, "embeddings": emb,
            "genre_probs": genre, "genres": genres, "source": pred.get("source", "injected")}


# ---------------------------------------------------------------------------------------------
# Files, the switch-over, pruning


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _build_lock(bundles: Path) -> Iterator[None]:
    bundles.mkdir(parents=True, exist_ok=True)
    with open(bundles / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another `indexer build` is running on {bundles}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_partials(bundles: Path) -> None:
    """Partial directories of killed builds (safe: the caller holds the build lock)."""
    for p in bundles.glob(".*.partial"):
        if p.is_dir():
            log.info("removing %s, left by an interrupted build", p)
            shutil.rmtree(p, ignore_errors=True)


def _switch_current(bundles: Path, version: str) -> None:
    """Point ``bundles/CURRENT`` at ``version``: temp file, fsync, ``os.replace``, fsync the folder."""
    fd, name = tempfile.mkstemp(prefix=f".{CURRENT_FILE}.", suffix=".tmp", dir=bundles)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(version + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(name, 0o644)
        os.replace(name, bundles / CURRENT_FILE)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    _fsync_path(bundles)


def _read_current(bundles: Path) -> str | None:
    try:
        name = (bundles / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def current_bundle(workdir: str | os.PathLike) -> Path:
    """The bundle ``<workdir>/bundles/CURRENT`` names; ``FileNotFoundError`` when there is none."""
    bundles = Path(workdir) / BUNDLES_DIR
    name = _read_current(bundles)
    if name is None:
        raise FileNotFoundError(f"no bundle in {bundles} (no {CURRENT_FILE}); run `indexer build` first")
    path = bundles / name
    if not (path / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{bundles / CURRENT_FILE} names {name!r}, but {path} is not a bundle")
    return path


def list_bundles(workdir: str | os.PathLike) -> list[Path]:
    """Complete bundles (a ``manifest.json``) under ``<workdir>/bundles``, oldest first."""
    bundles = Path(workdir) / BUNDLES_DIR
    found = []
    for p in list_runs(bundles):
        try:
            created = read_json(p / MANIFEST_FILE).get("created_at", "")
        except (OSError, ValueError):
            continue
        found.append((created, p.name, p))
    return [p for _, _, p in sorted(found)]


def prune_bundles(workdir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete complete bundles beyond the newest ``keep``, never the one ``CURRENT`` names."""
    bundles = Path(workdir) / BUNDLES_DIR
    current = _read_current(bundles)
    doomed = [p for p in list_bundles(workdir)[:-keep or None] if p.name != current]
    for p in doomed:
        log.info("pruning bundle %s", p.name)
        shutil.rmtree(p, ignore_errors=True)
    return doomed


# ---------------------------------------------------------------------------------------------
# The build


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_bundle(workdir: str | os.PathLike, cfg: IndexerConfig | None = None,
                 wmf_run: str | None = None, cnn_run: str | None = None,
                 acoustic_override: dict | None = None, show_progress: bool | None = None) -> Path:
    """Build ``<workdir>/bundles/<version>/`` (docs/SERVING.md) and point ``CURRENT`` at it.

    Parameters
    ----------
    workdir: the work directory (``interactions/``, ``models/``, ``catalog.lmdb``).
    cfg: index settings; ``None``: the defaults.
    wmf_run, cnn_run: run names or paths; ``None``: the latest run. With no CNN run at all the
        bundle is collaborative only (no acoustic files, ``source_runs.cnn`` null).
    acoustic_override: for benchmarks: a dict like ``load_predictions``'s (``song_ids``,
        ``factors``, optional ``embeddings``, ``genre_probs``, ``genres``, ``source``) used
        instead of a CNN run's predictions.
    show_progress: a progress bar over the build steps (default: on a terminal).

    Returns the bundle's directory.
    """
    cfg = cfg or IndexerConfig()
    workdir = Path(workdir)
    bundles = workdir / BUNDLES_DIR
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    t_start = time.perf_counter()

    with _build_lock(bundles):
        _remove_stale_partials(bundles)
        version = new_run_name()
        while (bundles / version).exists():
            version = new_run_name()
        final = bundles / version
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=bundles))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; a server may run as another user
        try:
            with tqdm(total=8, desc="indexer build", unit="step", disable=not show_progress) as bar:
                manifest = _assemble(tmp, workdir, cfg, version, wmf_run, cnn_run, acoustic_override, bar)
                bar.set_postfix_str("default lists")
                if cfg.default_lists:
                    manifest["default_lists"] = _write_default_lists(tmp, manifest, cfg, show_progress)
                bar.update()
                manifest["build_seconds"] = round(time.perf_counter() - t_start, 3)
                bar.set_postfix_str("checksums")
                manifest["checksums"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                write_json(tmp / MANIFEST_FILE, manifest)
                for p in tmp.iterdir():
                    if p.is_file():
                        _fsync_path(p)
                _fsync_path(tmp)
                bar.update()
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            _fsync_path(bundles)
            _switch_current(bundles, version)
        except BaseException:
            if _read_current(bundles) != version:  # never served: leave no trace
                shutil.rmtree(final, ignore_errors=True)
            raise
        log.info("bundle %s is CURRENT (%.1f s)", version, time.perf_counter() - t_start)
        prune_bundles(workdir, cfg.keep)
    return final


def _write_default_lists(tmp: Path, manifest: dict, cfg: IndexerConfig, show_progress: bool) -> dict:
    """Compute the default lists of both kinds over the bundle in ``tmp`` (opened with a
    provisional manifest), save them, and return their manifest entry."""
    entry = {}
    write_json(tmp / MANIFEST_FILE, manifest)
    with Bundle.open(tmp, threads=None) as bundle:
        # SimilarSongs' default diversity is 0 whatever the server's (docs/SERVING.md)
        for kind, diversity in (("recommend", cfg.default_diversity), ("similar", 0.0)):
            t0 = time.perf_counter()
            lists = compute_default_lists(bundle, kind, k=cfg.default_k, acoustic_share=cfg.default_acoustic_share,
                                          diversity=diversity, workers=cfg.list_workers,
                                          show_progress=show_progress)
            for part, name in list_files(kind).items():
                save_npy(tmp / name, lists[part])
            entry[kind] = {"k": cfg.default_k, "acoustic_share": cfg.default_acoustic_share,
                           "diversity": diversity, "seconds": round(time.perf_counter() - t0, 3)}
            log.info("default %s lists: %d rows in %.1f s", kind, len(lists["rows"]), entry[kind]["seconds"])
    (tmp / MANIFEST_FILE).unlink()  # the final one, with checksums, is written last
    return entry


def _assemble(tmp: Path, workdir: Path, cfg: IndexerConfig, version: str, wmf_run: str | None,
              cnn_run: str | None, acoustic_override: dict | None, bar) -> dict:
    """Write every bundle file into ``tmp``; return the manifest without checksums."""
    # -- inputs ---------------------------------------------------------------------------------
    bar.set_postfix_str("inputs")
    wmf_dir = resolve_run(workdir / WMF_DIR, wmf_run)
    model, wmf_users, wmf_songs = load_run(wmf_dir, mmap=True)
    k = model.song_factors.shape[1]
    if acoustic_override is not None:
        acoustic = _check_acoustic(acoustic_override)
        cnn_dir = None
    else:
        cnn_dir = _resolve_cnn(workdir, cnn_run)
        if cnn_dir is None:
            log.warning("no CNN run under %s: building a collaborative-only bundle (no acoustic index)",
                        workdir / CNN_DIR)
            acoustic = None
        else:
            acoustic = _check_acoustic(_acoustic_inputs(cnn_dir, wmf_dir, k))
    if acoustic is not None and acoustic["factors"].shape[1] != k:
        raise ValueError(f"acoustic vectors have {acoustic['factors'].shape[1]} dimensions, the WMF run {k}")
    log.info("WMF run %s: %d users, %d songs, %d factors; acoustic: %s", wmf_dir.name, len(wmf_users),
             len(wmf_songs), k, "none" if acoustic is None else f"{len(acoustic['song_ids'])} songs")
    bar.update()

    # -- ids, users -----------------------------------------------------------------------------
    bar.set_postfix_str("ids and users")
    song_order = _sorted_ids(wmf_songs, "WMF song ids")
    user_order = _sorted_ids(wmf_users, "WMF user ids")
    wmf_songs_sorted = wmf_songs if song_order is None else wmf_songs[song_order]
    universe = wmf_songs_sorted if acoustic is None else np.union1d(wmf_songs_sorted, acoustic["song_ids"])
    user_ids = wmf_users if user_order is None else wmf_users[user_order]
    save_npy(tmp / "song_ids.npy", np.ascontiguousarray(universe))
    save_npy(tmp / "user_ids.npy", np.ascontiguousarray(user_ids))
    user_factors = model.user_factors if user_order is None else model.user_factors[user_order]
    save_npy(tmp / "user_factors.npy", np.ascontiguousarray(user_factors, dtype=np.float32))
    bar.update()

    # -- played songs ---------------------------------------------------------------------------
    bar.set_postfix_str("played songs")
    inter = Interactions.load(workdir / INTERACTIONS_DIR)
    if len(inter.user_ids) != len(user_ids) or not np.array_equal(inter.user_ids, user_ids):
        raise ValueError(f"the interactions in {workdir / INTERACTIONS_DIR} ({inter.n_users} users) are "
                         f"not the users of WMF run {wmf_dir.name} ({len(user_ids)}); the data was "
                         "re-ingested since: retrain WMF (`pmrs train-wmf`) or pass the matching --wmf-run")
    try:
        col_rows = _rows_of(universe, inter.song_ids).astype(np.int32)
    except ValueError:
        raise ValueError(f"the interactions name songs WMF run {wmf_dir.name} does not know; the data "
                         "was re-ingested since: retrain WMF (`pmrs train-wmf`)") from None
    m = inter.matrix
    played_indices = col_rows[m.indices]  # monotone map of sorted columns: rows stay sorted
    save_npy(tmp / "played_indptr.npy", m.indptr.astype(np.int64))
    save_npy(tmp / "played_indices.npy", played_indices)
    songs_with_plays = int(np.count_nonzero(np.bincount(played_indices, minlength=len(universe))))
    n_plays = int(m.nnz)
    del inter, m, played_indices
    bar.update()

    # -- vectors and indexes --------------------------------------------------------------------
    rng = np.random.default_rng(cfg.seed)
    collab_rows = _rows_of(universe, wmf_songs_sorted).astype(np.int32)
    collab_vectors = np.ascontiguousarray(
        model.song_factors if song_order is None else model.song_factors[song_order], dtype=np.float32)
    save_npy(tmp / "collab_rows.npy", collab_rows)
    save_npy(tmp / "collab_vectors.npy", collab_vectors)
    n_q = min(cfg.recall_queries, len(user_ids))
    user_q = np.asarray(user_factors[np.sort(rng.choice(len(user_ids), n_q, replace=False))], dtype=np.float32)
    indexes: dict[str, dict] = {}

    bar.set_postfix_str("collaborative index")
    # recall is held for both kinds of query an index answers: users (Recommend) and songs
    # (SimilarSongs, whose query is the song's own vector in that index)
    song_n = max(1, n_q // 2)
    collab_q = {"users": user_q, "songs": collab_vectors[np.sort(rng.choice(
        len(collab_vectors), min(song_n, len(collab_vectors)), replace=False))]}
    index, entry = build_chosen_index(collab_vectors, cfg.collaborative_spec, collab_q, cfg)
    faiss.write_index(index, str(tmp / "collaborative.faiss"))
    indexes["collaborative"] = {"file": "collaborative.faiss", **entry}
    del index
    bar.update()

    bar.set_postfix_str("acoustic index")
    genres: list[str] = []
    emb_dim = None
    if acoustic is not None:
        acoustic_rows = _rows_of(universe, acoustic["song_ids"]).astype(np.int32)
        save_npy(tmp / "acoustic_rows.npy", acoustic_rows)
        save_npy(tmp / "acoustic_vectors.npy", acoustic["factors"])
        save_npy(tmp / "acoustic_embeddings.npy", acoustic["embeddings"])
        emb_dim = int(acoustic["embeddings"].shape[1])
        if acoustic["genre_probs"] is not None:
            save_npy(tmp / "genre_probs.npy", acoustic["genre_probs"])
            genres = acoustic["genres"]
        n_audio = len(acoustic_rows)
        song_q = acoustic["factors"][np.sort(rng.choice(n_audio, min(song_n, n_audio), replace=False))]
        index, entry = build_chosen_index(acoustic["factors"], cfg.acoustic_spec,
                                          {"users": user_q, "songs": song_q}, cfg)
        faiss.write_index(index, str(tmp / "acoustic.faiss"))
        indexes["acoustic"] = {"file": "acoustic.faiss", **entry}
        del index
    bar.update()

    # -- catalog --------------------------------------------------------------------------------
    bar.set_postfix_str("catalog")
    catalog = workdir / CATALOG_FILE
    if catalog.is_file():
        shutil.copyfile(catalog, tmp / CATALOG_FILE)
    else:
        log.warning("no %s: the bundle has no catalog (songs() gives ids only)", catalog)
    bar.update()

    wmf_cfg = asdict(model.config)
    return {
        "format_version": FORMAT_VERSION, "version": version, "created_at": _utc_now(),
        "source_runs": {"wmf": str(wmf_dir.resolve()),
                        "cnn": None if acoustic is None else
                        (str(cnn_dir.resolve()) if cnn_dir is not None else acoustic["source"])},
        "wmf_config": wmf_cfg,
        "counts": {"users": int(len(user_ids)), "songs": int(len(universe)),
                   "songs_with_plays": songs_with_plays, "songs_with_factors": int(len(collab_rows)),
                   "songs_with_audio": 0 if acoustic is None else int(len(acoustic["song_ids"])),
                   "plays": n_plays},
        "dimensions": {"factors": int(k), "embedding": emb_dim},
        "genres": genres,
        "catalog": CATALOG_FILE if catalog.is_file() else None,
        "indexes": indexes,
        "indexer_config": asdict(cfg),
    }
