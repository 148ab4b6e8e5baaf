"""What explanations cost (``make bench``): computed ``Recommend`` and ``SimilarSongs`` answered by
``pmrs.Recommender`` in this process with ``explain`` off and on, the same requests in the same
order, interleaved call by call so that load on the machine hits both alike. In-process timing is
the handler's own cost (over gRPC the transport adds the same milliseconds to both, so the ratio
there is smaller). Writes ``bench/results/explain.json``.

Needs a work directory with a bundle: the full shape's (``python -m bench.run --only
ingest,wmf,index``) by default, or any other (``--workdir``).

    python -m bench.explain_bench [--workdir DIR] [--calls N]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.common import FULL_SONGS, FULL_USERS, workdir_bench, write_result

#: Each computed call sets a share (so no default list answers it): the second source's, at this.
SHARE = 0.3
K = 10


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1000.0


def _summary(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"mean_ms": round(float(a.mean()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "calls": len(ms)}


def bench_explain(command: str, workdir: Path, calls: int = 400, seed: int = 7) -> dict:
    from pmrs_clients.loadtest import load_ids
    from threadpoolctl import threadpool_limits

    import pmrs
    from pmrs.serving.contract import current_bundle

    threadpool_limits(1, user_api="blas")            # as pmrs-server runs (blas_threads 1)
    bundle = current_bundle(workdir)
    users, songs = load_ids(bundle)
    rng = np.random.default_rng(seed)
    picked_users = [users[i].decode() for i in rng.integers(0, len(users), calls)]
    picked_songs = [songs[i].decode() for i in rng.integers(0, len(songs), calls)]
    with pmrs.Recommender.open(workdir) as rec:
        info = rec.info()
        sources = [s.name for s in info.sources]
        shares = {sources[1]: SHARE} if len(sources) > 1 else None
        loads = {"recommend_computed": lambda i, e: rec.recommend(picked_users[i], k=K, shares=shares, explain=e),
                 "similar_computed": lambda i, e: rec.similar_songs(picked_songs[i], k=K, shares=shares, explain=e)}
        results: dict = {}
        for name, call in loads.items():
            for i in range(calls):                   # warm-up: pages in, as in a running server
                call(i, False), call(i, True)
            off, on = [], []
            for i in range(calls):
                if i % 2:                            # alternate which goes first
                    on.append(_timed(call, i, True))
                    off.append(_timed(call, i, False))
                else:
                    off.append(_timed(call, i, False))
                    on.append(_timed(call, i, True))
            results[name] = {"explain_off": _summary(off), "explain_on": _summary(on),
                             "cost_of_explain": round(float(np.mean(on) / np.mean(off)) - 1.0, 3)}
            print(f"{name:20s} off {results[name]['explain_off']['mean_ms']:.2f} ms  "
                  f"on {results[name]['explain_on']['mean_ms']:.2f} ms  "
                  f"(+{results[name]['cost_of_explain'] * 100:.0f}%)", flush=True)
    payload = {"bundle": str(bundle), "bundle_version": info.version, "users": info.users, "songs": info.songs,
               "sources": sources, "shares": shares, "k": K, "results": results,
               "goal": "explain costs at most 0.20 on a computed Recommend at the full shape",
               "full_shape": info.users == FULL_USERS and info.songs >= FULL_SONGS,
               "note": "pmrs.Recommender in one process as pmrs-server runs it (1 BLAS thread, 1 FAISS thread), "
                       "calls one at a time after one warm-up pass, explain off and on interleaved"}
    write_result("explain", payload, command)
    return payload


def main(argv: list[str] | None = None) -> None:
    workdir_bench("bench.explain_bench", bench_explain, argv, calls=400)


if __name__ == "__main__":
    main()
