"""Replicas (``make bench``): Recommend and Ping throughput from one load test against one
pmrs-server and against two over the same full-shape bundle, the client balancing round robin.
Writes ``bench/results/replicas.json``.

This machine has 2 cores for the load generator and every server process together: the figure
shows whether a second process adds capacity when the first one is bound by its own Python
(GIL) rather than by the cores, and what balancing costs; it cannot show the scaling of replicas
on machines of their own.
"""

from __future__ import annotations

import os
import time

from bench.common import DATA, FULL_SONGS, FULL_USERS, write_result
from bench.live_bench import _Server

LOADS = (("ping", {"ping": 1.0}, None), ("recommend_default", {"recommend": 1.0}, None),
         ("recommend_computed", {"recommend": 1.0}, 0.3))
CONCURRENCY = 32


def bench_replicas(command: str, workdir=None, duration_s: float = 8.0) -> dict:
    from pmrs_clients.loadtest import load_ids, run_loadtest
    from pmrs.serving.contract import current_bundle

    workdir = workdir or DATA / f"work-{FULL_USERS}x{FULL_SONGS}"
    users, songs = load_ids(current_bundle(workdir))
    servers = [_Server(workdir)]
    results: dict = {}
    try:
        for n in (1, 2):
            if n == 2:
                servers.append(_Server(workdir))
            target = ",".join(s.target for s in servers)
            for name, mix, share in LOADS:
                o = run_loadtest(target, concurrency=CONCURRENCY, duration_s=duration_s, mix=mix, user_ids=users,
                                 song_ids=songs, acoustic_share=share, warmup_s=1.0, timeout_s=10.0)["overall"]
                results.setdefault(name, {})[str(n)] = {"qps": o["ok_qps"], "p50_ms": o["latency_ms"]["p50"],
                                                        "p99_ms": o["latency_ms"]["p99"], "errors": o["errors"]}
                print(f"{n} replica(s) {name:19s} c={CONCURRENCY}: {o['ok_qps']:8.1f} qps  p99 "
                      f"{o['latency_ms']['p99']:.1f} ms  errors {o['errors']}", flush=True)
    finally:
        for s in servers:
            s.stop()
    payload = {"bundle": str(current_bundle(workdir)), "concurrency": CONCURRENCY, "duration_s": duration_s,
               "results": results,
               "two_over_one": {k: round(v["2"]["qps"] / v["1"]["qps"], 3) for k, v in results.items()},
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "note": "load generator and both servers share 2 cores; see the module docstring",
               "date_local": time.strftime("%Y-%m-%d %H:%M")}
    write_result("replicas", payload, command)
    return payload


if __name__ == "__main__":
    bench_replicas("python -m bench.replicas_bench")
