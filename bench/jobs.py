"""Benchmark jobs, each run in its own process by bench.run: ``python -m bench.jobs JOB ARGS``.

Each prints one JSON line with its timings and its own peak resident memory.
"""

from __future__ import annotations

import json
import sys
import time

from bench.common import TreeMemory, peak_rss_mb


def job_ingest(triplets: str, workdir: str) -> dict:
    from pmrs.ingest import ingest

    t0 = time.perf_counter()
    report = ingest(None, workdir, triplets=triplets)
    t = report["triplets"]
    return {"seconds": round(time.perf_counter() - t0, 2), "parse_and_build_seconds": t["seconds"],
            "lines": t["lines"], "users": t["users"], "songs": t["songs"], "nonzeros": t["nonzeros"],
            "peak_rss_mb": round(peak_rss_mb())}


def job_pandas(triplets: str) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(triplets, sep="\t", header=None, names=["user", "song", "count"])
    return {"seconds": round(time.perf_counter() - t0, 2), "rows": len(df), "peak_rss_mb": round(peak_rss_mb())}


def job_wmf(workdir: str, factors: str, iterations: str) -> dict:
    from pmrs.collaborative.training import train_wmf_run
    from pmrs.collaborative.wmf import WMFConfig, load_run

    t0 = time.perf_counter()
    run = train_wmf_run(workdir, WMFConfig(factors=int(factors), iterations=int(iterations)),
                        show_progress=True)
    total = time.perf_counter() - t0
    model, _, _ = load_run(run)
    per_iter = [r["seconds"] for r in model.log]
    return {"total_seconds": round(total, 2), "seconds_per_iteration": per_iter,
            "mean_seconds_per_iteration": round(sum(per_iter) / len(per_iter), 3),
            "peak_rss_mb": round(peak_rss_mb()), "run": str(run)}


def job_wmf_engine(workdir: str, engine: str, factors: str, iterations: str, master: str = "local[2]") -> dict:
    """``train_wmf_run`` with ``engine`` (implicit: every core; spark: ``master``), settings as
    given (no selection); peak memory of the whole process tree (the JVM included)."""
    from pmrs.collaborative.training import train_wmf_run
    from pmrs.collaborative.wmf import WMFConfig, load_run
    from pmrs.collaborative.spark import SparkConfig
    from pmrs.artifacts import read_json

    t0 = time.perf_counter()
    with TreeMemory() as mem:
        run = train_wmf_run(workdir, WMFConfig(factors=int(factors), iterations=int(iterations)),
                            show_progress=False, engine=engine, spark_cfg=SparkConfig(master=master))
    total = time.perf_counter() - t0
    model, _, _ = load_run(run)
    per_iter = [r["seconds"] for r in model.log]
    log = read_json(run / "train_log.json")
    return {"engine": engine, **({"master": master} if engine == "spark" else {}),
            "total_seconds": round(total, 2), "fit_seconds": log["fit_seconds"],
            **({"spark_seconds": log["spark_seconds"]} if "spark_seconds" in log else {}),
            "seconds_per_iteration": per_iter,
            "mean_seconds_per_iteration": round(sum(per_iter) / len(per_iter), 3) if per_iter else None,
            "peak_tree_rss_mb": round(mem.peak_mb), "peak_python_rss_mb": round(mem.peak_self_mb),
            "run": str(run)}


def job_bare_implicit(workdir: str, factors: str, iterations: str) -> dict:
    """implicit's ALS called directly on the same confidence matrix, as a user of implicit would."""
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from pmrs.interactions import Interactions
    from pmrs.collaborative.wmf import WMFConfig, confidence

    cfg = WMFConfig()
    inter = Interactions.load(f"{workdir}/interactions")
    conf = confidence(inter.matrix, cfg.alpha, cfg.eps)
    times: list[float] = []
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=int(factors), regularization=cfg.regularization,
                                        alpha=1.0, iterations=int(iterations), random_state=0)
        model.fit(conf, show_progress=True, callback=lambda i, elapsed, loss: times.append(elapsed))
    assert np.isfinite(model.user_factors).all()
    return {"seconds_per_iteration": [round(t, 4) for t in times],
            "mean_seconds_per_iteration": round(sum(times) / len(times), 3),
            "peak_rss_mb": round(peak_rss_mb())}


def job_neighbours(workdir: str, neighbours: str = "100") -> dict:
    """``pmrs train-neighbours`` with fixed settings (asymmetric cosine, ``neighbours`` per song,
    no validation): the neighbourhood model's build time and this process's peak memory."""
    from pmrs.collaborative.neighbours import NeighboursConfig, load_run
    from pmrs.collaborative.training import train_neighbours_run

    t0 = time.perf_counter()
    run = train_neighbours_run(workdir, NeighboursConfig(neighbours=int(neighbours)), show_progress=True)
    total = time.perf_counter() - t0
    model, song_ids = load_run(run)
    s = model.similarity
    return {"total_seconds": round(total, 2), "build_seconds": model.log["build_seconds"],
            "build_cpu_seconds": model.log["build_cpu_seconds"], "threads": model.log["threads"],
            "songs": int(len(song_ids)), "stored": int(s.nnz),
            "songs_with_neighbours": int((s.indptr[1:] > s.indptr[:-1]).sum()),
            "run_mb": round(sum(p.stat().st_size for p in run.iterdir()) / 2**20, 1),
            "peak_rss_mb": round(peak_rss_mb()), "run": str(run)}


def job_neighbours_share(workdir: str) -> dict:
    """The neighbours source's share chosen on validation (``pmrs train-neighbours``' last step,
    ``pmrs.collaborative.share``) at the work directory's shape, with the latest WMF run's settings and
    the default neighbourhood settings: time and this process's peak memory."""
    from pmrs.collaborative.share import choose_neighbours_share
    from pmrs.interactions import Interactions
    from pmrs.collaborative.neighbours import NeighboursConfig
    from pmrs.artifacts import read_json, resolve_run
    from pmrs.collaborative.wmf import WMF_DIR, WMFConfig

    inter = Interactions.load(f"{workdir}/interactions")
    names = set(WMFConfig.__dataclass_fields__)
    wmf = WMFConfig(**{k: v for k, v in read_json(resolve_run(f"{workdir}/{WMF_DIR}") / "config.json").items()
                       if k in names})
    t0 = time.perf_counter()
    out = choose_neighbours_share(inter.matrix, wmf, NeighboursConfig(neighbours=100), show_progress=True)
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak_rss_mb()), **out}


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    result = globals()[f"job_{name}"](*args)
    print(json.dumps(result), flush=True)
