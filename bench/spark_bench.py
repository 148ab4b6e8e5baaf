"""WMF on Spark against implicit on the same matrix (issue 15; bench/results/spark.json).

A synthetic world of ``SPARK_USERS`` x ``SPARK_SONGS`` (about 47 plays per user, the Taste
Profile's density per user; smaller than the full shape so that Spark's iterations fit the
bench's time on 2 cores) is ingested once; then, each in its own process so that its memory is its
own, ``train_wmf_run`` with 64 factors and ``--iterations`` iterations on the implicit engine
(every core) and on the Spark engine (``local[2]``, MLlib's ALS, the JVM's 2 GB default heap).
Peak memory is that of the whole process tree (Python and the JVM). Spark's per-iteration
seconds come from its job completions (pmrs.collaborative.spark); its first iteration also pays the JVM's
warm-up, so the summary gives the median as well as the mean.

    python -m bench.spark_bench [--users N --songs N --iterations N]

``--translation`` measures instead how PMRS's constant ridge lambda is best handed to MLlib's
per-row ridge ``regParam * n`` (bench/results/spark_translation.json): on small synthetic worlds
(800 x 300, seeds 0 and 1, half the eligible users as test users, 32 factors, 10 iterations), for
lambda 1, 10 and 50, hold-out recall@50 and mAP@500 of implicit and of Spark with regParam from
three rules: ``mean_ridge`` (PMRS's: the mean ridge over user and song rows is lambda),
``mean_user`` (the mean user's ridge is lambda) and ``untranslated`` (regParam = lambda).
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


TRANSLATION_WORLD = (800, 300)
TRANSLATION_SEEDS = (0, 1)
TRANSLATION_LAMBDAS = (1.0, 10.0, 50.0)


def _rules(lam: float, counts) -> dict:
    import numpy as np

    from pmrs.collaborative.spark import reg_param

    lengths = np.diff(counts.indptr)
    return {"mean_ridge": reg_param(lam, counts), "mean_user": lam / lengths[lengths > 0].mean(),
            "untranslated": lam}


def bench_translation(command: str) -> dict:
    import tempfile

    from pmrs.cli import main as pmrs_main
    from pmrs.evaluation.split import HoldoutConfig, make_split
    from pmrs.evaluation.metrics import evaluate_scores
    from pmrs.interactions import Interactions
    from pmrs.collaborative.wmf import WMFConfig, train_wmf
    from pmrs.collaborative.spark import SparkConfig, spark_session, train_wmf_spark

    def metrics(model, split) -> dict:
        m = evaluate_scores(model.scores, split, show_progress=False)
        return {"recall@50": round(m["recall@50"], 4), "map@500": round(m["map@500"], 4)}

    rows = []
    users, songs = TRANSLATION_WORLD
    with tempfile.TemporaryDirectory() as tmp, spark_session(SparkConfig(master="local[2]")) as spark:
        for seed in TRANSLATION_SEEDS:
            d = f"{tmp}/world{seed}"
            for argv in (["synth", f"{d}/data", "--users", str(users), "--songs", str(songs), "--no-audio",
                          "--lastfm", "none", "--seed", str(seed), "-q"],
                         ["ingest", f"{d}/data", "--workdir", f"{d}/work", "-q"]):
                assert pmrs_main(argv) == 0, argv
            split = make_split(Interactions.load(f"{d}/work/interactions").matrix,
                               HoldoutConfig(test_users=0.5, seed=seed))
            for lam in TRANSLATION_LAMBDAS:
                cfg = WMFConfig(factors=32, iterations=10, regularization=lam)
                row = {"seed": seed, "lambda": lam,
                       "implicit": metrics(train_wmf(split.train, cfg, show_progress=False), split)}
                for rule, reg in _rules(lam, split.train).items():
                    model, _ = train_wmf_spark(split.train, cfg, f"{tmp}/scratch", spark=spark, mllib_reg=reg)
                    row[rule] = {"reg_param": round(reg, 5), **metrics(model, split)}
                print(row, flush=True)
                rows.append(row)
    worst = {rule: {m: round(max(abs(r[rule][m] - r["implicit"][m]) for r in rows), 4)
                    for m in ("recall@50", "map@500")} for rule in ("mean_ridge", "mean_user", "untranslated")}
    payload = {"world": {"users": users, "songs": songs, "seeds": list(TRANSLATION_SEEDS)},
               "factors": 32, "iterations": 10, "rows": rows, "largest_gap_to_implicit": worst}
    write_result("spark_translation", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spark_bench")
    p.add_argument("--users", type=int, default=SPARK_USERS)
    p.add_argument("--songs", type=int, default=SPARK_SONGS)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--translation", action="store_true", help="compare regularization translations instead")
    args = p.parse_args(argv)
    if args.translation:
        bench_translation("python -m bench.spark_bench --translation")
        return 0
    bench_spark("python -m bench.spark_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
                args.users, args.songs, args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
