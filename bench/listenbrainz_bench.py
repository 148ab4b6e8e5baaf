"""Listens through the ListenBrainz-compatible endpoint (``make bench``): listens accepted per
second (``single`` submissions one at a time, and ``import`` submissions of 1,000), and the time
from a submitted listen to the user's changed recommendations, beside RecordPlays over gRPC on a
``pmrs-server`` over the same write log. Writes ``bench/results/listenbrainz.json``.

Runs on the full-shape bundle by default (``--workdir`` for another), served from a scratch work
directory whose ``bundles`` links to it, so the write log starts empty and the bench data is not
changed. Client and servers share this machine's 2 cores.

    python -m bench.listenbrainz_bench [--workdir DIR] [--listens N]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import started, workdir_bench, write_result

TOKEN = "bench-write-token-0123456789"
IMPORT_SIZE = 1000
#: Seconds a change may take to show before a sample counts as not seen.
PATIENCE_S = 10.0


def lb_served(workdir: Path):
    """``pmrs-listenbrainz serve`` over ``workdir`` on a free local port, its rate limits out of
    the way (the bench is one client sending as fast as it can); yields ``(url, process)``."""
    config = workdir / "listenbrainz-bench.toml"
    config.write_text("[listenbrainz]\nrate_limit_token = 1000000000\nrate_limit_anonymous = 1000000000\n",
                      encoding="utf-8")
    return started(["-m", "pmrs.listenbrainz.cli", "--workdir", str(workdir), "--config", str(config), "-q",
                    "serve", "--bind", "127.0.0.1:0"])


def _ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "mean_ms": round(float(a.mean()), 2), "samples": len(values)}


def _listen(song: dict, ts: int) -> dict:
    meta = {"artist_name": song["artist"] or "unknown", "track_name": song["title"] or song["song_id"]}
    if song.get("release"):
        meta["release_name"] = song["release"]
    return {"listened_at": ts, "track_metadata": meta}


def _until_changed(read, before, t0: float) -> float | None:
    """Seconds from ``t0`` until ``read()`` differs from ``before``; ``None`` past PATIENCE_S."""
    while time.perf_counter() - t0 < PATIENCE_S:
        if read() != before:
            return time.perf_counter() - t0
        time.sleep(0.002)
    return None


def bench_listenbrainz(command: str, workdir: Path, listens: int = 300, samples: int = 20) -> dict:
    import requests

    import pmrs
    from bench.serving_bench import served
    from pmrs.listenbrainz.tokens import TokenStore
    from pmrs.serving.bundle import Bundle
    from pmrs.serving.contract import current_bundle

    bundle_dir = current_bundle(workdir)
    bundle = Bundle.open(bundle_dir)
    rng = np.random.default_rng(7)
    songs = [dict(f) for f in bundle.songs(rng.choice(bundle.n_songs, min(bundle.n_songs, 5000), replace=False))]
    songs = [s for s in songs if s["artist"] and s["title"]]
    users = [bundle.user_ids[i].decode() for i in rng.choice(len(bundle.user_ids), samples * 3, replace=False)]
    with tempfile.TemporaryDirectory(prefix="pmrs-lb-bench-") as tmp:
        scratch = Path(tmp) / "work"
        scratch.mkdir()
        (scratch / "bundles").symlink_to(bundle_dir.parent.resolve())
        tokens = {u: TokenStore(scratch).create(u)[1] for u in users}
        with lb_served(scratch) as (url, _), served(scratch, env={"PMRS_WRITE_TOKEN": TOKEN}) as (target, _), \
                pmrs.connect(target, token=TOKEN, timeout=30) as grpc_client, requests.Session() as http:
            def submit(user: str, kind: str, payload: list) -> None:
                r = http.post(f"{url}/1/submit-listens", json={"listen_type": kind, "payload": payload},
                              headers={"Authorization": f"Token {tokens[user]}"}, timeout=60)
                r.raise_for_status()

            def lb_recs(user: str) -> list:
                r = http.get(f"{url}/pmrs/v1/recommendations/{user}", params={"explain": "0"}, timeout=30)
                return [(s["song_id"], round(s["score"], 6)) for s in r.json()["songs"]]

            def grpc_recs(user: str) -> list:
                return [(s.song_id, round(s.score, 6)) for s in grpc_client.recommend(user).songs]

            now = int(time.time()) - 86400
            user = users[0]
            submit(user, "single", [_listen(songs[0], now)])            # warm-up: the catalog index
            t0 = time.perf_counter()
            for i in range(listens):
                submit(user, "single", [_listen(songs[i % len(songs)], now + 1 + i)])
            single_s = time.perf_counter() - t0
            batches = max(1, listens // 100)
            t0 = time.perf_counter()
            for b in range(batches):
                submit(users[1], "import", [_listen(songs[(b * IMPORT_SIZE + i) % len(songs)], now - 1 - b * IMPORT_SIZE - i)
                                            for i in range(IMPORT_SIZE)])
            import_s = time.perf_counter() - t0
            ids = [s["song_id"] for s in songs]
            t0 = time.perf_counter()
            for i in range(listens):
                grpc_client.record_plays(user, {ids[i % len(ids)]: 1})
            grpc_s = time.perf_counter() - t0

            seen: dict[str, list] = {"listen_to_endpoint_answer": [], "listen_to_pmrs_server_answer": [],
                                     "record_plays_to_pmrs_server_answer": []}
            missed = dict.fromkeys(seen, 0)
            for j in range(samples):
                u, v = users[2 + 2 * j], users[3 + 2 * j]
                song = songs[(7 * j) % len(songs)]
                before_lb, before_grpc = lb_recs(u), grpc_recs(u)
                t0 = time.perf_counter()
                submit(u, "single", [_listen(song, now + listens + 10 + j)])
                for name, read, before in (("listen_to_endpoint_answer", lambda u=u: lb_recs(u), before_lb),
                                           ("listen_to_pmrs_server_answer", lambda u=u: grpc_recs(u), before_grpc)):
                    took = _until_changed(read, before, t0)
                    seen[name].append(took) if took is not None else missed.__setitem__(name, missed[name] + 1)
                before = grpc_recs(v)
                t0 = time.perf_counter()
                grpc_client.record_plays(v, {song["song_id"]: 1})
                took = _until_changed(lambda v=v: grpc_recs(v), before, t0)
                name = "record_plays_to_pmrs_server_answer"
                seen[name].append(took) if took is not None else missed.__setitem__(name, missed[name] + 1)
    rates = {"single_listens_per_s": round(listens / single_s, 1),
             "import_listens_per_s": round(batches * IMPORT_SIZE / import_s, 1),
             "grpc_record_plays_calls_per_s": round(listens / grpc_s, 1)}
    print(f"listens/s: single {rates['single_listens_per_s']}, import of {IMPORT_SIZE} "
          f"{rates['import_listens_per_s']}; RecordPlays {rates['grpc_record_plays_calls_per_s']} calls/s", flush=True)
    visible = {name: (_ms(v) if v else None) | {"not_seen_within_s": {"count": missed[name], "seconds": PATIENCE_S}}
               for name, v in seen.items()}
    for name, v in visible.items():
        print(f"{name}: {v}", flush=True)
    payload = {"bundle": str(bundle_dir), "users": len(bundle.user_ids), "songs": bundle.n_songs,
               "listens_per_rate": listens, "import_size": IMPORT_SIZE, "rates": rates,
               "time_to_changed_recommendations": visible,
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "note": "one client at a time over HTTP keep-alive (requests) and gRPC; pmrs-listenbrainz and "
                       "pmrs-server share one write log (the server sees the endpoint's listens at its next "
                       "poll); client and servers share the 2 cores; every write fsyncs the SQLite WAL"}
    write_result("listenbrainz", payload, command)
    return payload


def main(argv: list[str] | None = None) -> None:
    workdir_bench("bench.listenbrainz_bench", bench_listenbrainz, argv, listens=300)


if __name__ == "__main__":
    main()
