"""Live writes (``make bench``): RecordPlays per second and how soon a write is visible, AddSong of
a 30 s clip to its first SimilarSongs answer, and read throughput against Ping while writes run.
Writes ``bench/results/live.json``.

- RecordPlays runs on the full-shape bundle (``bench.run --only ingest,wmf,index`` makes it),
  served from a scratch work directory whose ``bundles`` links to it, so the write log starts empty
  and the bench data is not changed. Two servers share the log: visibility is measured on the one
  that did not take the write (on the one that did, a write is applied before it is acknowledged).
- AddSong needs a bundle that carries a CNN: a small world built here (600 users, 300 songs with
  10 s clips, a 2-epoch CNN; cached in bench/data), and 30 s clips rendered now, so nobody has
  heard them (the cost per added song does not depend on the catalog's size).
Client and servers share this machine's 2 cores.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import DATA, FULL_SONGS, FULL_USERS, write_result

TOKEN = "bench-write-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


class _Server:
    """A pmrs-server that takes writes (``bench.serving_bench.served``) and a stub to call it."""

    def __init__(self, workdir: Path):
        import contextlib

        import grpc

        from bench.serving_bench import served
        from pmrs.v1 import recommender_pb2_grpc as pb_grpc

        self._stack = contextlib.ExitStack()
        self.target, self.proc = self._stack.enter_context(served(workdir, env={"PMRS_WRITE_TOKEN": TOKEN}))
        self.channel = self._stack.enter_context(grpc.insecure_channel(self.target))
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def stop(self) -> None:
        self._stack.close()


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms) if ms else np.zeros(1)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def _write_load(stub, songs: list[str], threads: int, plays_per_call: int, duration_s: float,
                prefix: str) -> dict:
    from pmrs.v1 import recommender_pb2 as pb

    stop = time.perf_counter() + duration_s
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        i = 0
        while time.perf_counter() < stop:
            pairs = [pb.Play(song_id=songs[j], count=int(rng.integers(1, 5)))
                     for j in rng.integers(0, len(songs), plays_per_call)]
            t0 = time.perf_counter()
            try:
                stub.RecordPlays(pb.RecordPlaysRequest(user_id=f"{prefix}-{t}-{i % 200}", plays=pairs),
                                 metadata=AUTH, timeout=30)
                lat[t].append((time.perf_counter() - t0) * 1e3)
            except Exception:
                errors[t] += 1
            i += 1

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    wall = time.perf_counter() - t0
    calls = sum(len(x) for x in lat)
    return {"threads": threads, "plays_per_call": plays_per_call, "calls_per_s": round(calls / wall, 1),
            "plays_per_s": round(calls * plays_per_call / wall, 1), "errors": sum(errors),
            "ack": _percentiles([v for x in lat for v in x])}


def _visibility(a: _Server, b: _Server, songs: list[str], samples: int) -> dict:
    """Ack on ``a`` to visible on ``a`` and on ``b``: a new user's first plays, then Recommend."""
    import grpc

    from pmrs.v1 import recommender_pb2 as pb

    same, other = [], []
    for i in range(samples):
        user = f"vis-{time.time_ns()}-{i}"
        a.stub.RecordPlays(pb.RecordPlaysRequest(user_id=user, plays=[pb.Play(song_id=songs[i], count=3)]),
                           metadata=AUTH, timeout=30)
        t_ack = time.perf_counter()
        a.stub.Recommend(pb.RecommendRequest(user_id=user, k=10), timeout=30)   # raises if not visible
        same.append((time.perf_counter() - t_ack) * 1e3)
        while True:
            try:
                b.stub.Recommend(pb.RecommendRequest(user_id=user, k=10), timeout=30)
                other.append((time.perf_counter() - t_ack) * 1e3)
                break
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND or time.perf_counter() - t_ack > 10:
                    raise
                time.sleep(0.002)
    return {"samples": samples, "same_server": _percentiles(same), "other_server": _percentiles(other)}


def bench_plays(workdir: Path, duration_s: float = 6.0) -> dict:
    from pmrs_clients.loadtest import load_ids, run_loadtest
    from pmrs.serving.contract import current_bundle

    bundle = current_bundle(workdir)
    users, song_ids = load_ids(bundle)
    songs = [s.decode() for s in song_ids[:: max(1, len(song_ids) // 20000)]]
    with tempfile.TemporaryDirectory(prefix="pmrs-live-bench-") as tmp:
        scratch = Path(tmp) / "work"
        scratch.mkdir()
        (scratch / "bundles").symlink_to((workdir / "bundles").resolve())
        t0 = time.perf_counter()
        a = _Server(scratch)
        b = _Server(scratch)
        startup = time.perf_counter() - t0
        try:
            writes = [_write_load(a.stub, songs, threads, ppc, duration_s, f"w{threads}x{ppc}")
                      for threads, ppc in ((1, 1), (4, 1), (4, 10), (16, 10))]
            for w in writes:
                print(f"RecordPlays threads={w['threads']:2d} plays/call={w['plays_per_call']:2d}: "
                      f"{w['calls_per_s']:7.1f} calls/s {w['plays_per_s']:8.1f} plays/s  ack p50 "
                      f"{w['ack']['p50_ms']} ms p99 {w['ack']['p99_ms']} ms  errors {w['errors']}", flush=True)
            vis = _visibility(a, b, songs, 40)
            print(f"visible: same server p50 {vis['same_server']['p50_ms']} ms; other server p50 "
                  f"{vis['other_server']['p50_ms']} ms p99 {vis['other_server']['p99_ms']} ms", flush=True)
            reads = {}
            for name, mix in (("ping", {"ping": 1.0}), ("recommend", {"recommend": 1.0})):
                quiet = run_loadtest(a.target, concurrency=8, duration_s=duration_s, mix=mix, user_ids=users,
                                     song_ids=song_ids, warmup_s=1.0, timeout_s=10.0)["overall"]
                box: dict = {}
                writer = threading.Thread(target=lambda: box.update(
                    _write_load(a.stub, songs, 2, 10, duration_s + 1.5, "bg")))
                writer.start()
                busy = run_loadtest(a.target, concurrency=8, duration_s=duration_s, mix=mix, user_ids=users,
                                    song_ids=song_ids, warmup_s=1.0, timeout_s=10.0)["overall"]
                writer.join()
                reads[name] = {"qps_without_writes": quiet["ok_qps"], "qps_with_writes": busy["ok_qps"],
                               "p99_ms_with_writes": busy["latency_ms"]["p99"], "errors": busy["errors"],
                               "writes_meanwhile_plays_per_s": box.get("plays_per_s")}
                print(f"{name:9s} c=8: {quiet['ok_qps']:.0f} qps without writes, {busy['ok_qps']:.0f} with "
                      f"{box.get('plays_per_s')} plays/s being written", flush=True)
        finally:
            a.stop()
            b.stop()
    return {"bundle": str(bundle), "startup_two_servers_seconds": round(startup, 2), "record_plays": writes,
            "visibility": vis, "reads_while_writing_c8": reads,
            "recommend_over_ping_with_writes": round(reads["recommend"]["qps_with_writes"]
                                                     / reads["ping"]["qps_with_writes"], 3)}


def bench_add_song(demo_work: Path, clips: int = 8) -> dict:
    import soundfile as sf

    from pmrs.synth.audio import make_styles, render_clip
    from pmrs.v1 import recommender_pb2 as pb

    styles = make_styles(4, seed=11)
    with tempfile.TemporaryDirectory(prefix="pmrs-live-bench-") as tmp:
        scratch = Path(tmp) / "work"
        scratch.mkdir()
        (scratch / "bundles").symlink_to((demo_work / "bundles").resolve())
        s = _Server(scratch)
        try:
            add_ms, first_ms, sizes = [], [], []
            for i in range(clips + 1):
                path = Path(tmp) / f"clip{i}.ogg"
                sf.write(path, render_clip(styles[i % 4], 5_000_000 + i, seconds=30.0), 22050)
                data = path.read_bytes()
                sizes.append(len(data))
                t0 = time.perf_counter()
                s.stub.AddSong(pb.AddSongRequest(song_id=f"BENCH-NEW-{time.time_ns()}-{i}", title="bench",
                                                 audio=data, audio_filename=path.name), metadata=AUTH, timeout=60)
                t1 = time.perf_counter()
                if i:   # the first call loads torch's kernels: reported apart
                    add_ms.append((t1 - t0) * 1e3)
                else:
                    cold_ms = (t1 - t0) * 1e3
            # the time to the first neighbours of a new song, end to end
            for i in range(clips):
                path = Path(tmp) / f"clip{i}.ogg"
                sid = f"BENCH-FIRST-{time.time_ns()}-{i}"
                t0 = time.perf_counter()
                s.stub.AddSong(pb.AddSongRequest(song_id=sid, audio=path.read_bytes(), audio_filename=path.name),
                               metadata=AUTH, timeout=60)
                got = s.stub.SimilarSongs(pb.SimilarSongsRequest(song_id=sid, k=10,
                                                                 mode=pb.SIMILARITY_MODE_ACOUSTIC), timeout=60)
                first_ms.append((time.perf_counter() - t0) * 1e3)
                assert len(got.songs) == 10
        finally:
            s.stop()
    out = {"bundle_workdir": str(demo_work), "world": "600 users, 300 songs (bench/data/live-small)", "clip": "30 s, 22,050 Hz mono Ogg Vorbis, rendered now",
           "clip_bytes_mean": int(np.mean(sizes)), "first_add_song_ms": round(cold_ms, 1),
           "add_song": _percentiles(add_ms), "add_song_to_first_similar_songs": _percentiles(first_ms)}
    print(f"AddSong (30 s clip): p50 {out['add_song']['p50_ms']} ms; to its first SimilarSongs answer p50 "
          f"{out['add_song_to_first_similar_songs']['p50_ms']} ms (first call {out['first_add_song_ms']} ms)",
          flush=True)
    return out


def _small_workdir() -> Path:
    """A small world with audio, a CNN and a bundle (cached in bench/data): AddSong's cost is the
    clip's decode, features and CNN windows plus a search, which do not depend on the catalog's
    size, so the bench does not need the demo's world."""
    from pmrs.cli import main

    root = DATA / "live-small"
    work = root / "work"
    if (work / "bundles" / "CURRENT").exists():
        return work
    cfg = root / "config.toml"
    root.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[wmf]\nfactors = 32\niterations = 5\n[cnn]\nmax_epochs = 2\nthreads = 2\n"
                   "[extract]\nworkers = 2\n")
    steps = [["synth", str(root / "data"), "--users", "600", "--songs", "300", "--genres", "6",
              "--clip-seconds", "10", "--cold-share", "0.2"],
             ["ingest", str(root / "data")], ["train-wmf", "--no-select"], ["extract", str(root / "data")],
             ["train-cnn"], ["predict"]]
    for args in steps:
        extra = [] if args[0] == "synth" else ["--workdir", str(work), "--config", str(cfg)]
        if main(args + extra + ["-q"]) != 0:
            raise RuntimeError(f"pmrs {args[0]} failed")
    from pmrs.indexing import IndexerConfig, build_bundle
    build_bundle(work, IndexerConfig(recall_queries=200), show_progress=False)
    return work


def bench_live(command: str, workdir: Path | None = None) -> dict:
    workdir = workdir or DATA / f"work-{FULL_USERS}x{FULL_SONGS}"
    payload = {"record_plays_full_shape": bench_plays(workdir), "add_song": bench_add_song(_small_workdir()),
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "note": "client and servers share the 2 cores; every commit fsyncs the SQLite WAL (group "
                       "commit: concurrent RecordPlays share one)"}
    write_result("live", payload, command)
    return payload


if __name__ == "__main__":
    bench_live("python -m bench.live_bench")
