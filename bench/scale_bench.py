"""One measured point past the Taste Profile (docs/SCALING.md): a generated catalog of ten times
its songs (3,845,460) indexed and searched on this machine, as `indexer build` indexes a source
(``pmrs.indexing.specs.build_chosen_index``: the automatic spec and its nprobe for recall@10 >=
the target). Writes ``bench/results/scale.json``.

The vectors are 64-d like WMF factors: a mixture of 4,000 Gaussian clusters of uneven sizes
(popular "scenes" hold more songs), so that an IVF index has structure to find, as it has in real
factors. The queries are user-like: means of a few songs' vectors plus noise. The build runs in a
child process so its peak memory is its own.

    python -m bench.scale_bench [--songs N]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import FULL_SONGS, peak_rss_mb, run_job, write_result

DIM = 64
CLUSTERS = 4_000
QUERIES = 300


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    weights = rng.pareto(1.2, CLUSTERS) + 1.0
    which = rng.choice(CLUSTERS, size=n, p=weights / weights.sum())
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 500_000):   # (bounded temporaries)
        w = which[start:start + 500_000]
        out[start:start + len(w)] = centres[w] + 0.6 * rng.standard_normal((len(w), DIM), dtype=np.float32)
    return out


def _queries(vectors: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(vectors), (n, 5))
    return (vectors[picks].mean(axis=1) + 0.1 * rng.standard_normal((n, DIM))).astype(np.float32)


def job_build(songs: str) -> dict:
    import faiss

    from pmrs.indexing.config import IndexerConfig
    from pmrs.indexing.specs import build_chosen_index, exact_top, recall_at

    n = int(songs)
    t0 = time.perf_counter()
    vectors = _vectors(n)
    gen_s = time.perf_counter() - t0
    cfg = IndexerConfig()
    build_queries = _queries(vectors, cfg.recall_queries, seed=2)
    t1 = time.perf_counter()
    index, entry = build_chosen_index(vectors, None, build_queries, cfg)
    build_s = time.perf_counter() - t1
    q = _queries(vectors, QUERIES)
    truth = exact_top(q, vectors, 10)
    faiss.omp_set_num_threads(1)
    lat = []
    found = np.empty((len(q), 10), np.int64)
    from pmrs.indexing.specs import augment_queries, needs_l2_augmentation
    qq = augment_queries(q) if needs_l2_augmentation(entry["spec"], cfg.l2_reduction) else q
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids = index.search(qq[i:i + 1], 10)
        lat.append((time.perf_counter() - t) * 1e3)
        found[i] = ids[0]
    return {"songs": n, "dimension": DIM, "generate_seconds": round(gen_s, 1), "build_seconds": round(build_s, 1),
            "spec": entry["spec"], "search_params": entry.get("search_params"),
            "recall_at_10_build_queries": entry.get("recall_at_10"),
            "recall_at_10_fresh_queries": round(recall_at(found, truth), 4),
            "latency_ms_one_thread": {"p50": round(float(np.percentile(lat, 50)), 3),
                                      "p99": round(float(np.percentile(lat, 99)), 3)},
            "vectors_bytes": int(vectors.nbytes), "peak_rss_mb": round(peak_rss_mb())}


def bench_scale(command: str, songs: int = 10 * FULL_SONGS) -> dict:
    result = run_job("bench.scale_bench", "--job", str(songs))
    base = run_job("bench.scale_bench", "--job", str(FULL_SONGS))   # the same method at the Taste Profile's size
    payload = {"point": result, "taste_profile_songs": FULL_SONGS, "baseline_taste_profile_songs": base,
               "note": "generated vectors (see the module docstring); 2 cores, shared with the load of the day"}
    write_result("scale", payload, command)
    print(f"{songs:,} songs: {result['spec']} built in {result['build_seconds']} s, peak {result['peak_rss_mb']} MB, "
          f"recall@10 {result['recall_at_10_fresh_queries']}, p50 {result['latency_ms_one_thread']['p50']} ms",
          flush=True)
    return payload


def main(argv: list[str] | None = None) -> int:
    import json

    p = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    p.add_argument("--songs", type=int, default=10 * FULL_SONGS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        print(json.dumps(job_build(args.job)))
        return 0
    bench_scale("python -m bench.scale_bench", args.songs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
