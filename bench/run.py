"""``make bench``: every benchmark; JSON in bench/results/.

- ingest, wmf: a Taste-Profile-shaped synthetic file (1,019,318 users, 384,546 songs, ~48M lines)
- extract: 30 s clips as wav, mp3, opus and vorbis, and 4-minute recordings (bench/extract_bench.py)
- cnn: CNN training and prediction throughput on 30 s clips (bench/cnn_bench.py)
- index: a full-shape bundle: build time, recall, search latency, open time (bench/index_bench.py)
- serving: pmrs-server start-up, QPS and latency at concurrency 1/8/32 (bench/serving_bench.py)
- spark: WMF on Spark local[2] against implicit, seconds per iteration and peak memory (Python + JVM),
  on a 50,000 x 10,000 world, 5 iterations (bench/spark_bench.py)
- neighbours: the neighbourhood model's build time and memory, and a bundle with the neighbours
  source served against Ping (bench/neighbours_bench.py)
- explain: computed Recommend and SimilarSongs with explanations off and on, in process
  (bench/explain_bench.py)
- listenbrainz: listens per second through the ListenBrainz-compatible endpoint and the time to
  changed recommendations, beside RecordPlays over gRPC (bench/listenbrainz_bench.py)
- live: RecordPlays rate and visibility across servers, AddSong to first neighbours, reads while
  writing (bench/live_bench.py); replicas: one and two servers under one load test
  (bench/replicas_bench.py)
- metadata: the metadata source at 384,546 songs with generated tags: vectors and index (time,
  peak memory), SimilarSongs in metadata mode against Ping (bench/metadata_bench.py ``full``)
- web: pmrs-web's page load times in headless Chromium on the demo world (bench/web_bench.py)
- scale: one source of 3,845,460 generated songs indexed and searched (bench/scale_bench.py)
- events: 50M listening events as CSV and Parquet read by ``pmrs.ingest.events.read_events``
  against DuckDB's own read and group-by of the same file (bench/events_bench.py)

- select: ``train-wmf`` with settings chosen from the data against a plain 15-iteration fit, full
  shape (bench/select_bench.py; the neighbourhood build there with ``--kinds``)

Last, docs/BENCHMARKS.md is rendered from every file in bench/results/ (bench/report.py).

    python -m bench.run [--only ingest,wmf,extract,cnn,index,serving,select,live,replicas,neighbours,explain,listenbrainz,metadata,spark,web,scale,events]
                        [--users N --songs N] [--iterations N]
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bench.common import DATA, FULL_SONGS, FULL_USERS, full_shape_world, run_job, write_result

INGEST_LIMITS = {"seconds": 90, "peak_rss_mb": 6 * 1024}
WMF_LIMITS = {"total_seconds": 8 * 60, "peak_rss_mb": 6 * 1024, "per_iteration_vs_bare": 1.10}


def bench_ingest(world, workdir, command: str) -> dict:
    triplets = str(world / "train_triplets.txt")
    ours = run_job("bench.jobs", "ingest", triplets, str(workdir))
    print(f"ingest: {ours['seconds']} s, peak {ours['peak_rss_mb']} MB", flush=True)
    pandas = run_job("bench.jobs", "pandas", triplets)
    print(f"pandas.read_csv: {pandas['seconds']} s, peak {pandas['peak_rss_mb']} MB", flush=True)
    payload = {"file": triplets, "size_bytes": (world / "train_triplets.txt").stat().st_size,
               "pmrs_ingest": ours, "pandas_read_csv": pandas, "limits": INGEST_LIMITS,
               "within_limits": ours["seconds"] <= INGEST_LIMITS["seconds"]
               and ours["peak_rss_mb"] <= INGEST_LIMITS["peak_rss_mb"]}
    write_result("ingest", payload, command)
    return payload


def bench_wmf(workdir, iterations: int, command: str) -> dict:
    ours = run_job("bench.jobs", "wmf", str(workdir), "64", str(iterations))
    print(f"train-wmf: {ours['total_seconds']} s total, {ours['mean_seconds_per_iteration']} s/iteration, "
          f"peak {ours['peak_rss_mb']} MB", flush=True)
    bare = run_job("bench.jobs", "bare_implicit", str(workdir), "64", "3")
    print(f"bare implicit: {bare['mean_seconds_per_iteration']} s/iteration", flush=True)
    ratio = ours["mean_seconds_per_iteration"] / bare["mean_seconds_per_iteration"]
    payload = {"factors": 64, "iterations": iterations, "pmrs_train_wmf": ours, "bare_implicit": bare,
               "per_iteration_ratio": round(ratio, 3), "limits": WMF_LIMITS,
               "within_limits": ratio <= WMF_LIMITS["per_iteration_vs_bare"]
               and ours["total_seconds"] <= WMF_LIMITS["total_seconds"]
               and ours["peak_rss_mb"] <= WMF_LIMITS["peak_rss_mb"]}
    write_result("wmf", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run")
    p.add_argument("--only", default="ingest,wmf,extract,cnn,index,serving,select,live,replicas,neighbours,explain,"
                                      "listenbrainz,metadata,spark,web,scale,events")
    p.add_argument("--users", type=int, default=FULL_USERS)
    p.add_argument("--songs", type=int, default=FULL_SONGS)
    p.add_argument("--iterations", type=int, default=15)
    args = p.parse_args(argv)
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    only = set(args.only.split(","))
    if only & {"ingest", "wmf", "index", "serving", "select", "live", "replicas", "neighbours", "explain", "listenbrainz"}:
        world = full_shape_world(args.users, args.songs)
        workdir = DATA / f"work-{args.users}x{args.songs}"
        if "ingest" in only or not (workdir / "interactions").exists():
            shutil.rmtree(workdir, ignore_errors=True)
            bench_ingest(world, workdir, command)
        serves = bool(only & {"index", "serving", "live", "replicas", "neighbours", "explain", "listenbrainz"})  # a model and a bundle
        if "wmf" in only or (serves and not (workdir / "models" / "wmf").exists()):
            bench_wmf(workdir, args.iterations, command)
        if "index" in only or (serves and not (workdir / "bundles" / "CURRENT").exists()):
            from bench.index_bench import bench_index

            bench_index(command)
        if "serving" in only:
            from bench.serving_bench import bench_serving

            bench_serving(command, workdir)
        if "select" in only:
            from bench.select_bench import bench_select

            bench_select(command, args.users, args.songs, kinds=("plain", "selected"))
        if "live" in only:
            from bench.live_bench import bench_live

            bench_live(command, workdir)
        if "replicas" in only:
            from bench.replicas_bench import bench_replicas

            bench_replicas(command, workdir)
        if "neighbours" in only:   # (after serving: its bundle becomes CURRENT)
            from bench.neighbours_bench import bench_build, bench_calls, bench_share_full
            from bench.neighbours_bench import bench_serving as bench_neighbours_serving

            bench_build(command, workdir)
            bench_share_full(command, workdir)
            bench_neighbours_serving(command, workdir)
            bench_calls(command, workdir)
        if "explain" in only:      # (after neighbours: with its bundle, three sources)
            from bench.explain_bench import bench_explain

            bench_explain(command, workdir)
        if "listenbrainz" in only:
            from bench.listenbrainz_bench import bench_listenbrainz

            bench_listenbrainz(command, workdir)
    if "extract" in only:
        from bench.extract_bench import bench_extract

        bench_extract(command)
    if "cnn" in only:
        from bench.cnn_bench import bench_cnn

        bench_cnn(command)
    if "metadata" in only:
        from bench.metadata_bench import bench_full

        bench_full(command)
    if "spark" in only:
        from bench.spark_bench import bench_spark

        bench_spark(command)
    if "web" in only:
        from bench.web_bench import main as bench_web

        bench_web([])
    if "scale" in only:
        from bench.scale_bench import bench_scale

        bench_scale(command)
    if "events" in only:
        from bench.events_bench import bench_events

        bench_events(command)
    from bench.report import write as write_report   # docs/BENCHMARKS.md from every result file

    print(f"wrote {write_report()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
