"""The neighbourhood model at the Taste Profile's shape (``make bench``; bench/results/neighbours.json).

- ``build``: ``pmrs train-neighbours`` with fixed settings (asymmetric cosine, 100 neighbours per
  song, no validation search) on the full-shape interactions, in a child process: build time,
  peak resident memory, the run's size (``bench.jobs neighbours``).
- ``share-full``: the share's choice on validation (``pmrs train-neighbours``' last step) at that
  shape, with the WMF run's settings, in a child process: time and peak memory
  (``bench.jobs neighbours_share``).
- ``serving``: a full-shape bundle with the ``neighbours`` source (collaborative, generated
  acoustic vectors as bench/index_bench.py makes them, neighbours; no default lists, so every
  call is computed), served by ``pmrs-server``; QPS and latency of Ping, of Recommend with the
  neighbours source's share at 0 (collaborative + acoustic only) and at its default share, and of
  SimilarSongs from the neighbours source alone, at concurrency 1 and 8. The neighbours source is
  the latest neighbourhood run of the work directory when there is one; otherwise a *generated*
  matrix of the same shape (100 neighbours per song drawn by popularity, decreasing scores; the
  cost of a sum of sparse rows depends on the rows' lengths and the listener's songs, not on the
  values), and the JSON says which.

- ``calls``: in process, without the transport, over that bundle: the time of 500 sampled
  users' Recommend with the neighbours share at 0 and at its default, of the neighbours source's
  search alone (the sum of the user's rows, ranked), and of SimilarSongs from it.
- ``share``: the share ``pmrs train-neighbours`` chooses on validation, and its table, on two
  small worlds (``pmrs synth`` default and ``--preset harder``, 3,000 users x 1,000 songs, no
  audio), each after ``pmrs train-wmf`` with automatic settings, as a user would run them.

    python -m bench.neighbours_bench [build] [share-full] [serving] [calls] [share] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, FULL_SONGS, FULL_USERS, peak_rss_mb, run_job, write_result

CONCURRENCY = (1, 8)
NEIGHBOURS = 100
#: (result name, method, shares of the requests, SimilarSongs source)
LOADS = (("ping", "ping", None, ""), ("recommend_without_neighbours", "recommend", {"neighbours": 0.0}, ""),
         ("recommend_with_neighbours", "recommend", None, ""),
         ("similar_neighbours", "similar", None, "neighbours"))


def generated_neighbours(counts, song_ids: np.ndarray, k: int = NEIGHBOURS, seed: int = 0):
    """A stand-in neighbourhood model: each song's ``k`` neighbours drawn in proportion to their
    users (as co-occurrence favours popular songs), scores decreasing along the row."""
    import scipy.sparse as sp

    from pmrs.indexing import NeighboursInput

    rng = np.random.default_rng(seed)
    n = len(song_ids)
    users = np.bincount(counts.indices, minlength=n).astype(np.float64)
    cols = rng.choice(n, size=(n, k), p=users / users.sum()).astype(np.int32)
    vals = np.sort(rng.random((n, k), dtype=np.float32), axis=1)[:, ::-1] + np.float32(1e-3)
    s = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k, dtype=np.int64)), shape=(n, n))
    s.sum_duplicates()
    return NeighboursInput("neighbours", np.asarray(song_ids), s, play_share=0.5,
                           origin=f"generated: {k} neighbours per song drawn by popularity")


def job_bundle(workdir: str) -> dict:
    from bench.index_bench import generated_acoustic
    from pmrs.artifacts import list_runs, resolve_run
    from pmrs.indexing import IndexerConfig, build_bundle
    from pmrs.interactions import Interactions
    from pmrs.collaborative.neighbours import NEIGHBOURS_DIR
    from pmrs.collaborative.wmf import WMF_DIR, load_run

    work = Path(workdir)
    model, _, song_ids = load_run(resolve_run(work / WMF_DIR), mmap=True)
    acoustic = generated_acoustic(song_ids, model.song_factors)
    del model
    override = None
    if not list_runs(work / NEIGHBOURS_DIR):
        inter = Interactions.load(work / "interactions")
        override = generated_neighbours(inter.matrix, inter.song_ids)
        del inter
    t0 = time.perf_counter()
    out = build_bundle(work, IndexerConfig(keep=1, default_lists=False, metadata=False),
                       acoustic_override=acoustic, neighbours_override=override, show_progress=False)
    m = json.loads((out / "manifest.json").read_text())
    return {"bundle": str(out), "build_seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": round(peak_rss_mb()), "neighbours": m["sources"]["neighbours"]["index"],
            "neighbours_origin": m["sources"]["neighbours"]["origin"],
            "neighbours_bytes": sum((out / f).stat().st_size
                                    for f in m["sources"]["neighbours"]["files"].values()),
            "defaults": m["defaults"]}


def bench_build(command: str, workdir: Path) -> dict:
    ours = run_job("bench.jobs", "neighbours", str(workdir), str(NEIGHBOURS))
    print(f"train-neighbours: {ours['total_seconds']} s, peak {ours['peak_rss_mb']} MB", flush=True)
    write_result("neighbours_build", ours, command)
    return ours


def bench_share_full(command: str, workdir: Path) -> dict:
    ours = run_job("bench.jobs", "neighbours_share", str(workdir))
    print(f"neighbours share at full shape: {ours['seconds']} s, peak {ours['peak_rss_mb']} MB, "
          f"share {ours['share']}", flush=True)
    write_result("neighbours_share_full", ours, command)
    return ours


def bench_serving(command: str, workdir: Path, duration_s: float = 6.0) -> dict:
    from bench.serving_bench import _rss_mb, load_point, served
    from pmrs_clients.loadtest import load_ids

    built = run_job("bench.neighbours_bench", "bundle", str(workdir))
    print(f"bundle with neighbours: {built['build_seconds']} s, peak {built['peak_rss_mb']} MB", flush=True)
    t0 = time.perf_counter()
    results: dict = {}
    with served(workdir) as (target, proc):
        ready_s = time.perf_counter() - t0
        users, songs = load_ids(built["bundle"])
        for name, rpc, shares, source in LOADS:
            for conc in CONCURRENCY:
                results.setdefault(name, {})[str(conc)] = load_point(target, name, rpc, conc, duration_s, users,
                                                                     songs, shares=shares, similar_source=source)
        rss = _rss_mb(proc.pid)
    ratio = {name: {c: round(results[name][str(c)]["qps"] / results["ping"][str(c)]["qps"], 3)
                    for c in CONCURRENCY} for name, *_ in LOADS[1:]}
    payload = {"bundle_build": built, "startup_seconds": round(ready_s, 2), "server_rss_mb_after_load": rss,
               "duration_s_per_point": duration_s, "results": results, "qps_over_ping_qps": ratio,
               "note": "no default lists: every Recommend and SimilarSongs is computed; client and server "
                       "share the machine's 2 cores with other work"}
    write_result("neighbours_serving", payload, command)
    return payload


def bench_calls(command: str, workdir: Path, n: int = 500) -> dict:
    import pmrs

    with pmrs.Recommender.open(workdir, threads=1) as rec:
        b = rec.bundle
        rng = np.random.default_rng(3)
        users = [b.user_ids[u].decode() for u in rng.choice(b.n_users, n, replace=False)]
        songs = [b.song_id(r) for r in rng.choice(b.n_songs, n, replace=False)]

        def timed(fn, ids) -> dict:
            for i in ids[:20]:   # warm-up (page cache, catalog cache)
                fn(i)
            times = []
            for i in ids:
                t = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - t)
            ms = np.asarray(times) * 1e3
            return {"calls": len(ms), "mean_ms": round(float(ms.mean()), 3),
                    "p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}

        played = {u: b.played(b.user_row(u)) for u in users}
        out = {"bundle": str(b.path), "neighbours_origin": b.manifest["sources"]["neighbours"]["origin"],
               "mean_played_songs": round(float(np.mean([len(p) for p in played.values()])), 1),
               "recommend_without_neighbours": timed(lambda u: rec.recommend(u, shares={"neighbours": 0.0}), users),
               "recommend_with_neighbours": timed(lambda u: rec.recommend(u, shares=dict(rec.defaults.shares)), users),
               "neighbours_search_only": timed(lambda u: b.search_songs("neighbours", played[u], 100), users),
               "similar_neighbours": timed(lambda s: rec.similar_songs(s, mode="neighbours"), songs)}
    for name, v in out.items():
        if isinstance(v, dict):
            print(f"{name:30s} mean {v['mean_ms']:.3f} ms  p50 {v['p50_ms']:.3f} ms  p99 {v['p99_ms']:.3f} ms")
    write_result("neighbours_calls", out, command)
    return out


def bench_share(command: str, users: int = 3000, songs: int = 1000) -> dict:
    import shutil
    import tempfile

    from pmrs.cli import main as pmrs_main

    worlds = {}
    for preset in ("default", "harder"):
        root = Path(tempfile.mkdtemp(prefix="pmrs-nshare-"))
        try:
            data, work = root / "data", root / "work"
            assert pmrs_main(["synth", str(data), "--users", str(users), "--songs", str(songs), "--no-audio",
                              "--preset", preset, "--lastfm", "none", "-q"]) == 0
            assert pmrs_main(["ingest", str(data), "--workdir", str(work), "-q"]) == 0
            t0 = time.perf_counter()
            assert pmrs_main(["train-wmf", "--workdir", str(work), "--run", "w", "-q"]) == 0
            t1 = time.perf_counter()
            assert pmrs_main(["train-neighbours", "--workdir", str(work), "--run", "n", "-q"]) == 0
            t2 = time.perf_counter()
            config = json.loads((work / "models" / "neighbours" / "n" / "config.json").read_text())
            chosen = config["serving_share"]
            worlds[preset] = {"train_wmf_seconds": round(t1 - t0, 1), "train_neighbours_seconds": round(t2 - t1, 1),
                              "neighbours": {k: config[k] for k in ("similarity", "alpha", "locality", "neighbours")},
                              **chosen}
            print(f"{preset}: share {chosen['share']} of "
                  + ", ".join(f"{t['share']}: {t['map@500']:.4f}/{t['recall@50']:.4f}" for t in chosen["table"]),
                  flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    payload = {"users": users, "songs": songs, "worlds": worlds}
    write_result("neighbours_share", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.neighbours_bench")
    p.add_argument("parts", nargs="*", default=["build", "share-full", "serving", "calls"])
    p.add_argument("--workdir", type=Path, default=DATA / f"work-{FULL_USERS}x{FULL_SONGS}")
    args = p.parse_args(argv)
    command = "python -m bench.neighbours_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if "build" in args.parts:
        bench_build(command, args.workdir)
    if "share-full" in args.parts:
        bench_share_full(command, args.workdir)
    if "serving" in args.parts:
        bench_serving(command, args.workdir)
    if "calls" in args.parts:
        bench_calls(command, args.workdir)
    if "share" in args.parts:
        bench_share(command)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bundle":
        print(json.dumps(job_bundle(sys.argv[2])), flush=True)
    else:
        sys.exit(main())
