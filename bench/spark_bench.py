"""WMF on Spark against implicit on the same matrix (issue 15; bench/results/spark.json).

A synthetic world of ``SPARK_USERS`` x ``SPARK_SONGS`` (about 47 plays per user, the Taste
Profile's density per user; smaller than the full shape so that Spark's iterations fit the
bench's time on 2 cores) is ingested once; then, each in its own process so that its memory is its
own, ``train_wmf_run`` with 64 factors and ``--iterations`` iterations on the implicit engine
(every core) and on the Spark engine (``local[2]``, MLlib's ALS, the JVM's 2 GB default heap).
Peak memory is that of the whole process tree (Python and the JVM). Spark's per-iteration
seconds come from its job completions (pmrs.wmf_spark); its first iteration also pays the JVM's
warm-up, so the summary gives the median as well as the mean.

    python -m bench.spark_bench [--users N --songs N --iterations N]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.common import DATA, full_shape_world, run_job, write_result

SPARK_USERS, SPARK_SONGS = 50_000, 10_000
FACTORS = 64


def _summary(job: dict) -> dict:
    its = job["seconds_per_iteration"]
    return {"mean": job["mean_seconds_per_iteration"], "median": round(statistics.median(its), 3) if its else None}


def bench_spark(command: str, users: int = SPARK_USERS, songs: int = SPARK_SONGS, iterations: int = 5) -> dict:
    world = full_shape_world(users, songs)
    workdir = DATA / f"work-{users}x{songs}"
    if not (workdir / "interactions").exists():
        from pmrs.ingest import ingest

        ingest(world, workdir)
    from pmrs.interactions import Interactions

    inter = Interactions.load(workdir / "interactions")
    implicit = run_job("bench.jobs", "wmf_engine", str(workdir), "implicit", str(FACTORS), str(iterations))
    print(f"implicit: {implicit['mean_seconds_per_iteration']} s/iteration, "
          f"peak {implicit['peak_tree_rss_mb']} MB", flush=True)
    spark = run_job("bench.jobs", "wmf_engine", str(workdir), "spark", str(FACTORS), str(iterations), "local[2]")
    print(f"spark local[2]: {spark['mean_seconds_per_iteration']} s/iteration, "
          f"peak {spark['peak_tree_rss_mb']} MB (Python + JVM)", flush=True)
    si, ss = _summary(implicit), _summary(spark)
    payload = {"shape": {"users": inter.n_users, "songs": inter.n_songs, "nonzeros": int(inter.matrix.nnz)},
               "factors": FACTORS, "iterations": iterations, "implicit": implicit, "spark": spark,
               "seconds_per_iteration": {"implicit": si, "spark_local2": ss},
               "spark_over_implicit_per_iteration": {
                   k: round(ss[k] / si[k], 1) if ss[k] and si[k] else None for k in ("mean", "median")},
               "peak_rss_mb": {"implicit": implicit["peak_tree_rss_mb"], "spark_local2": spark["peak_tree_rss_mb"]}}
    write_result("spark", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spark_bench")
    p.add_argument("--users", type=int, default=SPARK_USERS)
    p.add_argument("--songs", type=int, default=SPARK_SONGS)
    p.add_argument("--iterations", type=int, default=5)
    args = p.parse_args(argv)
    bench_spark("python -m bench.spark_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                args.users, args.songs, args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
