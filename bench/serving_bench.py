"""Serving throughput on the full-shape bundle (``make bench``): pmrs-server start-up, QPS and
p50/p99 latency at concurrency 1, 8 and 32 for Recommend and SimilarSongs (each as the default
request, which the bundle's default lists answer, and as a computed one) and the no-op Ping of
the same server, and the server's resident memory. Writes ``bench/results/serving.json``.

Needs the full-shape work directory with a bundle (``python -m bench.run --only ingest,wmf,index``).
Client and server share this machine's 2 cores, so the figures include the load generator's cost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.common import DATA, FULL_SONGS, FULL_USERS, started, write_result

CONCURRENCY = (1, 8, 32)
#: What is loaded: (result name, method, acoustic_share; None: unset). The bundle's default lists
#: answer the default Recommend and SimilarSongs (share unset: the server's 0.2, k 10); with a
#: share of 0.3 (another acoustic quota) each call is computed, as every non-default request is.
LOADS = (("ping", "ping", None), ("recommend", "recommend", None),
         ("recommend_computed", "recommend", 0.3), ("similar", "similar", None),
         ("similar_computed", "similar", 0.3))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def served(workdir: Path, env: dict | None = None):
    """``pmrs-server`` over ``workdir`` on a free local port, as its own process (``env``: more
    environment, e.g. a write token): yields ``(target, process)`` once it listens."""
    return started(["-m", "pmrs_server.main", "--workdir", str(workdir), "--bind", "127.0.0.1:0", "-q"], env)


def load_point(target: str, name: str, rpc: str, concurrency: int, duration_s: float, users, songs,
               **request) -> dict:
    """One point of a load curve: ``rpc`` alone at ``concurrency`` for ``duration_s`` (after a 1 s
    warm-up), k 10 and ``request``'s settings (``run_loadtest``'s keywords); printed, and
    returned as the result entry."""
    from pmrs_clients.loadtest import run_loadtest

    report = run_loadtest(target, concurrency=concurrency, duration_s=duration_s, mix={rpc: 1.0},
                          user_ids=users, song_ids=songs, k=10, warmup_s=1.0, timeout_s=10.0, **request)
    o = report["overall"]
    print(f"{name:18s} c={concurrency:2d}: {o['ok_qps']:8.1f} qps  p50 {o['latency_ms']['p50']:.2f} ms  "
          f"p99 {o['latency_ms']['p99']:.2f} ms  errors {o['errors']}", flush=True)
    return {"qps": o["ok_qps"], "p50_ms": o["latency_ms"]["p50"], "p95_ms": o["latency_ms"]["p95"],
            "p99_ms": o["latency_ms"]["p99"], "errors": o["errors"], "calls": o["calls"],
            "client_cpu_percent": report.get("client_cpu_percent")}


def over_ping(results: dict, names) -> dict:
    """Each load's QPS over Ping's at the same concurrency."""
    return {name: {c: round(results[name][str(c)]["qps"] / results["ping"][str(c)]["qps"], 3)
                   for c in CONCURRENCY} for name in names}


def bench_serving(command: str, workdir: Path | None = None, duration_s: float = 8.0) -> dict:
    from pmrs_clients.loadtest import load_ids

    import pmrs
    from pmrs.serving.contract import current_bundle

    workdir = workdir or DATA / f"work-{FULL_USERS}x{FULL_SONGS}"
    bundle = current_bundle(workdir)
    info_lists = json.loads((bundle / "manifest.json").read_text()).get("default_lists")
    t0 = time.perf_counter()
    with served(workdir) as (target, proc):
        with pmrs.connect(target, timeout=30) as client:
            info = client.info()
            users, songs = load_ids(bundle)
            client.recommend(users[0].decode(), k=10)
        ready_s = time.perf_counter() - t0
        rss_start = _rss_mb(proc.pid)
        results: dict = {}
        for name, rpc, share in LOADS:
            for conc in CONCURRENCY:
                results.setdefault(name, {})[str(conc)] = load_point(target, name, rpc, conc, duration_s, users,
                                                                     songs, acoustic_share=share)
        rss_end = _rss_mb(proc.pid)
    ratio = over_ping(results, [name for name, _, _ in LOADS[1:]])
    payload = {"bundle": str(bundle), "bundle_version": info.version, "users": info.users, "songs": info.songs,
               "indexes": [{"name": ix.name, "spec": ix.spec, "recall_at_10": ix.recall_at_10,
                            "search_params": dict(ix.search_params)} for ix in info.sources],
               "acoustic_vectors": "generated (no audio at full shape; see index.json)",
               "startup_to_first_answer_seconds": round(ready_s, 2),
               "server_rss_mb": {"after_start": rss_start, "after_load": rss_end},
               "duration_s_per_point": duration_s, "results": results,
               "default_lists": info_lists,
               "qps_over_ping_qps": ratio,
               "note": "client (pmrs-loadtest, grpc.aio) and server share the 2 cores"}
    write_result("serving", payload, command)
    return payload


if __name__ == "__main__":
    bench_serving("python -m bench.serving_bench")
