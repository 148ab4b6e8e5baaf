"""FAISS index specs for a source's vectors: the automatic choice, the L2 reduction of inner-product
search, and the search parameter raised until a target recall@10 against exact search is reached
(docs/ARCHITECTURE.md, "Indexes: exact, or IVF over l2-augmented vectors")."""

from __future__ import annotations

import logging
import math
import time

import faiss
import numpy as np

from ..blend import candidate_count
from .config import IndexerConfig

log = logging.getLogger(__name__)

RECALL_AT = 10
#: Where the search-parameter doubling starts and stops (an IVF's nprobe stops at its nlist).
NPROBE_START = 1
EF_SEARCH_START, EF_SEARCH_MAX = 16, 4096
#: Index structures built for a metric (graphs): their specs get the L2 reduction of the inner product.
L2_STRUCTURES = ("HNSW", "NSG")



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
    """Whether ``spec`` is built as an L2 index over vectors with one extra coordinate: always for a
    graph built for a metric (HNSW, NSG), for any other approximate spec when ``l2_reduction``,
    never for exact ``Flat`` (docs/SERVING.md, "Build details"; why: docs/ARCHITECTURE.md,
    "Indexes: exact, or IVF over l2-augmented vectors")."""
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


def recall_with_ties(found: np.ndarray, truth: np.ndarray, queries: np.ndarray, vectors: np.ndarray,
                     tol: float = 1e-5) -> float:
    """:func:`recall_at` that counts a found id as a hit when its exact inner product is at least
    the row's last exact one (within ``tol``, relative): where many vectors tie (metadata vectors
    of songs with the same artist, release and tags are equal), exact search's choice among them
    is arbitrary, and an index that returns other tied vectors is not wrong. Without ties it
    equals :func:`recall_at`."""
    if truth.size == 0:
        return 1.0
    q = np.asarray(queries, dtype=np.float32)
    kth = np.einsum("qd,qd->q", vectors[truth[:, -1]], q)
    ok = found >= 0
    scores = np.einsum("qkd,qd->qk", vectors[np.where(ok, found, 0)], q)
    hits = ok & (scores >= kth[:, None] - tol * np.maximum(np.abs(kth[:, None]), 1.0))
    return float(np.minimum(hits.sum(axis=1), truth.shape[1]).sum() / truth.size)


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
    (doubling) until recall@10 on ``queries`` against exact inner-product search (ties counted as
    hits: :func:`recall_with_ties`) reaches
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
    # a default request's first search asks each source for this many candidates: a kind's own
    # parameter must have its probed lists hold them, or each call searches twice
    wanted = min(candidate_count(cfg.default_k), n)
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
        ms = (time.perf_counter() - t1) * 1e3 / len(q)
        by_group = {name: recall_with_ties(found[a:b], truth[a:b], queries[a:b], vectors)
                    for name, a, b in zip(groups, bounds[:-1], bounds[1:])}
        full = {}
        if len(by_group) > 1:   # (the share of each kind's queries answered with `wanted` songs)
            held = (index.search(q, wanted)[1] >= 0).all(axis=1)
            full = {name: round(float(held[a:b].mean()), 4) for name, a, b in zip(groups, bounds[:-1], bounds[1:])}
        r = min(by_group.values())
        tried.append({**({param: v} if param else {}), "recall_at_10": round(r, 4),
                      **({"recall_at_10_by_queries": {name: round(x, 4) for name, x in by_group.items()},
                          f"full_{wanted}_by_queries": full} if len(by_group) > 1 else {}),
                      "ms_per_query": round(ms, 4)})
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
    by_kind = (params_by_queries(tried, param, value, cfg.target_recall, f"full_{wanted}_by_queries")
               if param and len(groups) > 1 else {})
    if recall < cfg.target_recall:
        log.warning("%s reaches recall@%d %.4f < target %.2f%s; recorded as measured", spec, top,
                    recall, cfg.target_recall, f" even at {param}={value}" if param else "")
    entry = {"spec": spec, "metric": "inner_product",
             "transform": "l2_augmented" if augmented else "none",
             "faiss_metric": "L2" if augmented else "inner_product",
             "search_params": {param: value} if param else {},
             **({"search_params_by_queries": by_kind} if by_kind else {}),
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


#: Share of a kind's queries whose search must return every candidate asked for at its own
#: parameter (the rest are searched again with more probes: ``bundle._VectorIndex._searched``).
FULL_ANSWERS = 0.99


def params_by_queries(tried: list[dict], param: str, value, target: float, full_key: str | None = None
                      ) -> dict[str, dict]:
    """Each kind of query's own search parameter: the smallest value tried (a ``recall_by_param``
    entry) at which that kind reached ``target`` and (with ``full_key``, the entries' share of
    queries answered with every candidate a default request asks for) at which at least
    :data:`FULL_ANSWERS` of its queries got all their candidates, where it is below the index's
    ``value`` (song queries need far fewer probes than users', so SimilarSongs need not probe as
    many lists; but too few lists hold fewer songs than a request asks for, and such a query
    is searched twice)."""
    kinds = {kind for t in tried for kind in t.get("recall_at_10_by_queries", {})}
    out = {}
    for kind in sorted(kinds):
        ok = [t[param] for t in tried if param in t and t[param] <= value
              and t.get("recall_at_10_by_queries", {}).get(kind, 0.0) >= target
              and (full_key is None or t.get(full_key, {}).get(kind, 1.0) >= FULL_ANSWERS)]
        if ok and min(ok) < value:
            out[kind] = {param: min(ok)}
    return out


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


