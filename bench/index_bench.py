"""``indexer build`` and the bundle reader at the Taste Profile's shape (bench/results/index.json).

Needs the full-shape work directory of ``python -m bench.run --only ingest,wmf`` (interactions and a
64-factor WMF run; no audio at that size). The acoustic index is built from *generated* vectors:
each song's WMF factors plus Gaussian noise (half the factors' per-dimension standard deviation),
with 128-d embeddings from a random projection, injected with ``build_bundle(acoustic_override=)``;
the JSON says so (``"acoustic_vectors": "generated"``).

Two child processes, so that each one's memory is its own:

- ``build``: ``build_bundle`` with the default settings (above 50,000 vectors: ``IVF{4 sqrt n},Flat``
  with nprobe raised until recall@10 >= 0.95), timed, peak RSS;
- ``serve``: ``Bundle.open`` time and resident memory, single-query latency (one thread) of exact
  search (``IndexFlatIP`` over the same vectors) and of the bundle's index, batched throughput
  (2,000 queries, both cores), recall@10 of the bundle's search on those queries.

    python -m bench.index_bench [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, FULL_SONGS, FULL_USERS, peak_rss_mb, run_job, write_result

SINGLE_QUERIES = 300
BATCH_QUERIES = 2_000
NOISE_SCALE = 0.5
EMBEDDING_DIM = 128


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def generated_acoustic(song_ids: np.ndarray, song_factors: np.ndarray, seed: int = 0) -> dict:
    """Stand-in CNN predictions: factors + noise, embeddings by a random projection."""
    rng = np.random.default_rng(seed)
    f = np.asarray(song_factors, dtype=np.float32)
    noise = rng.standard_normal(f.shape, dtype=np.float32) * (NOISE_SCALE * f.std(axis=0, keepdims=True))
    factors = f + noise
    proj = rng.standard_normal((f.shape[1], EMBEDDING_DIM), dtype=np.float32)
    embeddings = factors @ proj + 0.1 * rng.standard_normal((len(f), EMBEDDING_DIM), dtype=np.float32)
    return {"song_ids": np.asarray(song_ids), "factors": factors, "embeddings": embeddings,
            "source": f"generated: WMF song factors + {NOISE_SCALE} sd noise"}


def job_catalog(world: str, workdir: str) -> dict:
    """``catalog.lmdb`` from the full-shape world's metadata files (``pmrs ingest``'s metadata
    path), so that served songs carry titles and artists as they would in a real deployment."""
    from pmrs.ingest import STANDARD_FILES
    from pmrs.ingest.metadata import build_catalog

    files = {key: Path(world) / STANDARD_FILES[key] for key in ("unique_tracks", "track_metadata", "genres")}
    t0 = time.perf_counter()
    report = build_catalog(Path(workdir) / "catalog.lmdb", **files)
    return {"seconds": round(time.perf_counter() - t0, 2), "sources": report.sources,
            "peak_rss_mb": round(peak_rss_mb())}


def job_build(workdir: str) -> dict:
    from pmrs.indexing import IndexerConfig, build_bundle
    from pmrs.artifacts import resolve_run
    from pmrs.collaborative.wmf import WMF_DIR, load_run

    work = Path(workdir)
    model, _, song_ids = load_run(resolve_run(work / WMF_DIR), mmap=True)
    acoustic = generated_acoustic(song_ids, model.song_factors)
    del model
    t0 = time.perf_counter()
    out = build_bundle(work, IndexerConfig(keep=1), acoustic_override=acoustic, show_progress=False)
    seconds = time.perf_counter() - t0
    m = json.loads((out / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in out.iterdir())
    return {"bundle": str(out), "build_seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb()),
            "bundle_bytes": size, "counts": m["counts"], "indexes": {n: src["index"] for n, src in m["sources"].items()},
            "default_lists": m.get("default_lists")}


def _latency(fn, queries: np.ndarray) -> dict:
    fn(queries[:1])  # warm-up
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q[None, :])
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"queries": len(ms), "mean_ms": round(float(ms.mean()), 3), "p50_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _throughput(fn, queries: np.ndarray) -> float:
    t = time.perf_counter()
    fn(queries)
    return round(len(queries) / (time.perf_counter() - t), 1)


def job_serve(bundle_dir: str) -> dict:
    import faiss

    from pmrs.indexing.specs import exact_top, recall_at
    from pmrs.serving.bundle import Bundle

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    b = Bundle.open(bundle_dir)
    open_s = time.perf_counter() - t0
    rss_open = _rss_mb()
    rng = np.random.default_rng(1)
    users = np.sort(rng.choice(b.n_users, BATCH_QUERIES, replace=False))
    queries = np.ascontiguousarray(b.user_factors[users], dtype=np.float32)
    t = time.perf_counter()
    row = b.user_row(b.user_ids[123_456])
    lookup_us = (time.perf_counter() - t) * 1e6
    t = time.perf_counter()
    b.fold_in(b.played(row)[:10])
    first_fold_in_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    b.fold_in(b.played(row)[:10])
    fold_in_ms = (time.perf_counter() - t) * 1e3
    out = {"open_seconds": round(open_s, 3), "rss_mb_before_open": round(rss0),
           "rss_mb_after_open": round(rss_open), "user_lookup_us": round(lookup_us, 1),
           "fold_in_ms": {"first": round(first_fold_in_ms, 2), "then": round(fold_in_ms, 3)}, "indexes": {}}
    for name, ix in b._indexes.items():   # (the vector sources; a neighbours source has no index)
        vectors = np.ascontiguousarray(ix.vectors, dtype=np.float32)
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        single = queries[:SINGLE_QUERIES]

        def exact(q):
            return flat.search(q, 10)

        def approx(q):
            return b.search(name, q, 10)

        faiss.omp_set_num_threads(1)
        b.threads = 1
        res = {"spec": ix.entry["spec"], "search_params": ix.entry["search_params"],
               "single_query_one_thread": {"exact_flat": _latency(exact, single),
                                           "bundle_index": _latency(approx, single)}}
        faiss.omp_set_num_threads(2)
        b.threads = 2
        res["batched_queries_per_second_two_threads"] = {
            "batch": BATCH_QUERIES, "exact_flat": _throughput(exact, queries),
            "bundle_index": _throughput(approx, queries)}
        _, found = b.search(name, queries, 10)
        truth = ix.rows[exact_top(queries, vectors, 10)]
        res["recall_at_10_user_queries"] = round(recall_at(found, truth), 4)
        res["recall_at_10_at_build"] = ix.entry["recall_at_10"]
        del flat, vectors
        out["indexes"][name] = res
    out["default_lists_against_online"] = _check_lists(b, rng)
    out["rss_mb_after_queries"] = round(_rss_mb())
    out["peak_rss_mb"] = round(peak_rss_mb())
    b.close()
    return out


def _check_lists(b, rng: np.random.Generator, n: int = 1000) -> dict:
    """How many of ``n`` sampled users' (songs') default lists differ from the online answer."""
    from pmrs.serving.recommend import MIXED, known_user_query, listed_items, recommend, similar_songs

    b.threads = 1
    out = {}
    for kind, lists in sorted(b.lists.items()):
        k, share, diversity = lists.k, lists.shares, lists.diversity
        differing = 0
        for r in rng.choice(b.n_users if kind == "recommend" else b.n_songs, n, replace=False).tolist():
            if kind == "recommend":
                q = known_user_query(b, r)
                online = recommend(b, q, k, share, diversity)
            else:
                online = similar_songs(b, r, k, MIXED, share, diversity)
            differing += listed_items(lists, r) != online
        out[kind] = {"sampled": n, "differing": int(differing)}
    return out


def bench_index(command: str, workdir: str | os.PathLike | None = None) -> dict:
    work = Path(workdir) if workdir else DATA / f"work-{FULL_USERS}x{FULL_SONGS}"
    if not (work / "interactions").is_dir() or not (work / "models" / "wmf").is_dir():
        raise FileNotFoundError(f"{work} lacks interactions or a WMF run; run "
                                "`python -m bench.run --only ingest,wmf` first")
    catalog = None
    world = DATA / f"world-{FULL_USERS}x{FULL_SONGS}"
    if not (work / "catalog.lmdb").exists() and (world / "track_metadata.db").exists():
        catalog = run_job("bench.index_bench", "catalog", str(world), str(work))
        print(f"catalog.lmdb from {world}: {catalog['seconds']} s", flush=True)
    build = run_job("bench.index_bench", "build", str(work))
    print(f"indexer build: {build['build_seconds']} s, peak {build['peak_rss_mb']} MB", flush=True)
    for kind, dl in (build.get("default_lists") or {}).items():
        print(f"  default {kind} lists: {dl['seconds']} s", flush=True)
    for name, ix in build["indexes"].items():
        print(f"  {name}: {ix['spec']} {ix['search_params']} recall@10 {ix['recall_at_10']} "
              f"({ix['build_seconds']} s)", flush=True)
    serve = run_job("bench.index_bench", "serve", build["bundle"])
    print(f"Bundle.open: {serve['open_seconds']} s, RSS {serve['rss_mb_after_open']} MB", flush=True)
    for kind, c in serve["default_lists_against_online"].items():
        print(f"  default {kind} lists: {c['differing']} of {c['sampled']} sampled differ from the online answer",
              flush=True)
    payload = {"workdir": str(work), "acoustic_vectors": "generated",
               "acoustic_generation": f"WMF song factors + Gaussian noise ({NOISE_SCALE} x per-dimension sd); "
                                      f"{EMBEDDING_DIM}-d embeddings by random projection",
               "catalog": catalog if catalog is not None else
               ("present" if (work / "catalog.lmdb").exists() else "none: served songs carry ids only"),
               "build": build, "serve": serve,
               "note": "one 2-core machine; other processes may have been running"}
    write_result("index", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("build", "serve", "catalog"):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        jobs = {"build": job_build, "serve": job_serve, "catalog": job_catalog}
        result = jobs[argv[0]](*argv[1:])
        print(json.dumps(result, default=float))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.index_bench")
    p.add_argument("--workdir", help="full-shape work directory (default: bench/data/work-<shape>)")
    args = p.parse_args(argv)
    bench_index("python -m bench.index_bench " + " ".join(argv), args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
