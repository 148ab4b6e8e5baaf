"""What explanations cost (``make bench``): computed ``Recommend`` and ``SimilarSongs`` with
``explain`` off and on, the same requests in the same order, interleaved call by call so that load
on the machine hits both alike; answered twice: by ``pmrs.Recommender`` in this process (the
handler's own cost) and by ``pmrs-server`` over gRPC, one call at a time from a plain stub (what a
client waits for: the transport adds the same milliseconds to both, and an explained answer is a
larger message). Writes ``bench/results/explain.json``.

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


def _interleaved(call, calls: int) -> dict:
    """``call(i, explain)`` for each request ``i`` with explain off and on, after a warm-up pass
    over the same requests (pages in, as in a running server), alternating which goes first."""
    for i in range(calls):
        call(i, False), call(i, True)
    off, on = [], []
    for i in range(calls):
        if i % 2:
            on.append(_timed(call, i, True))
            off.append(_timed(call, i, False))
        else:
            off.append(_timed(call, i, False))
            on.append(_timed(call, i, True))
    return {"explain_off": _summary(off), "explain_on": _summary(on),
            "cost_of_explain": round(float(np.mean(on) / np.mean(off)) - 1.0, 3)}


def _print(where: str, name: str, r: dict) -> None:
    print(f"{where:10s} {name:20s} off {r['explain_off']['mean_ms']:.2f} ms  on {r['explain_on']['mean_ms']:.2f} ms  "
          f"(+{r['cost_of_explain'] * 100:.0f}%)", flush=True)


def _served(workdir: Path, users: list[str], songs: list[str], shares: dict | None, calls: int) -> dict:
    """The same loads over gRPC: ``pmrs-server`` on ``workdir``, a plain generated stub, one call
    at a time."""
    import grpc

    from bench.serving_bench import served
    from pmrs.v1 import recommender_pb2 as pb
    from pmrs.v1 import recommender_pb2_grpc as pb_grpc

    out = {}
    with served(workdir) as (target, _proc), grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        loads = {"recommend_computed": lambda i, e: stub.Recommend(
                     pb.RecommendRequest(user_id=users[i], k=K, shares=shares, explain=e), timeout=30),
                 "similar_computed": lambda i, e: stub.SimilarSongs(
                     pb.SimilarSongsRequest(song_id=songs[i], k=K, shares=shares, explain=e), timeout=30)}
        for name, call in loads.items():
            out[name] = _interleaved(call, calls)
            _print("over gRPC", name, out[name])
    return out


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
            results[name] = _interleaved(call, calls)
            _print("in process", name, results[name])
    served = _served(workdir, picked_users, picked_songs, shares, calls)
    payload = {"bundle": str(bundle), "bundle_version": info.version, "users": info.users, "songs": info.songs,
               "sources": sources, "shares": shares, "k": K, "results": results, "over_grpc": served,
               "goal": "explain costs at most 0.20 on a computed Recommend at the full shape",
               "full_shape": info.users == FULL_USERS and info.songs >= FULL_SONGS,
               "note": "results: pmrs.Recommender in one process as pmrs-server runs it (1 BLAS thread, 1 FAISS "
                       "thread); over_grpc: pmrs-server on the same bundle, a plain stub on the same machine; "
                       "calls one at a time after one warm-up pass, explain off and on interleaved"}
    write_result("explain", payload, command)
    return payload


def main(argv: list[str] | None = None) -> None:
    workdir_bench("bench.explain_bench", bench_explain, argv, calls=400)


if __name__ == "__main__":
    main()
