"""``pmrs-loadtest``: closed-loop load test of a PMRS server.

``concurrency`` workers each send one call, wait for its answer, and send the next, for
``warmup_s + duration_s`` seconds; calls started during the warm-up are not recorded. Each worker
picks the method of its next call at random under ``mix`` (e.g. 70 % Recommend, 30 %
SimilarSongs) and the user or song id at random from the given ids (a bundle's ``user_ids.npy``
and ``song_ids.npy``, or explicit lists).

Two engines drive the workers over ONE shared channel (:mod:`pmrs.channel`'s, without retries:
every failure counts), sending the generated messages directly rather than through
:func:`pmrs.connect`, so that what is measured is the server and the transport, not the client's
conversion into result types:

- ``"threads"``: N threads, each with its own blocking stub;
- ``"aio"``: N coroutines of one ``grpc.aio`` event loop.

On the 2-core development machine, against a trivial Ping server (grpcio sync server) in another
process, ``aio`` gave more calls per second at 8 concurrent callers (about 4,300 against 3,400,
noisy) and as many or more at 32; blocking threads did about 10 % better with a single caller
(about 2,100 against 1,900). ``aio`` is the default; ``--engine threads`` is kept for
comparison. Client and server share the two cores, so these are transport-bound figures. The client's own CPU use is
reported (``client_cpu_percent``): near 100 % of one core means the client, not the server, may be
the bottleneck.

Per-call latency is ``time.perf_counter`` around the call, over every completed call (errors
included, so deadline expiries show in the tail). The report gives calls, QPS (all calls and
successful ones), p50/p95/p99/max/mean latency in milliseconds and error counts by status code
name, per method and overall, plus the run's settings and date.

Example
-------
``pmrs-loadtest --target 127.0.0.1:50051 --concurrency 8 --duration 30 --ids-from
pmrs-data/bundles --json reports/load.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generator

import grpc
import numpy as np

from pmrs.channel import auth_metadata, channel_credentials, channel_target, make_channel
from pmrs.entry import run_cli
from pmrs.v1 import recommender_pb2 as pb
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

from .cli import connection_args, read_token

__all__ = ["DEFAULT_MIX", "ENGINES", "RPCS", "format_report", "load_ids", "main", "parse_mix",
           "run_loadtest", "write_json_atomic"]

log = logging.getLogger(__name__)

RPCS: dict[str, str] = {
    "recommend": "Recommend",
    "similar": "SimilarSongs",
    "song": "GetSong",
    "info": "GetBundleInfo",
    "ping": "Ping",
}
"""Load-test method name -> gRPC method of ``pmrs.v1.Recommender``."""

DEFAULT_MIX: dict[str, float] = {"recommend": 0.7, "similar": 0.3}
ENGINES = ("aio", "threads")
_NEEDS_USERS = {"recommend"}
_NEEDS_SONGS = {"similar", "song"}

IdList = Sequence[str] | np.ndarray


# -- inputs -----------------------------------------------------------------------------------

def parse_mix(text: str) -> dict[str, float]:
    """Parse ``"recommend=0.7,similar=0.3"`` into normalised weights.

    Parameters
    ----------
    text : str
        Comma-separated ``name=weight`` pairs; names from :data:`RPCS`, weights >= 0.

    Returns
    -------
    dict of str to float
        Weights summing to 1, zero weights dropped.
    """
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"mix entry {part!r} is not name=weight")
        try:
            mix[name] = mix.get(name, 0.0) + float(value)
        except ValueError:
            raise ValueError(f"mix weight {value!r} of {name!r} is not a number") from None
    return _normalise_mix(mix)


def _normalise_mix(mix: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(mix) - set(RPCS))
    if unknown:
        raise ValueError(f"unknown rpc(s) in mix: {', '.join(unknown)}; known: {', '.join(RPCS)}")
    if any(w < 0 for w in mix.values()):
        raise ValueError(f"mix weights must be >= 0, got {dict(mix)}")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError(f"mix needs a positive weight, got {dict(mix)}")
    return {name: w / total for name, w in mix.items() if w > 0}


def load_ids(bundle_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map a bundle's user and song ids.

    Parameters
    ----------
    bundle_dir : path
        A bundle directory (holding ``user_ids.npy`` and ``song_ids.npy``), a ``bundles/``
        directory (its ``CURRENT`` bundle is used), or a work directory holding ``bundles/``.

    Returns
    -------
    user_ids, song_ids : np.ndarray
        ``(n_users,)`` and ``(n_songs,)`` ``S`` byte strings, memory-mapped.
    """
    path = Path(bundle_dir)
    for candidate in (path, path / "bundles"):
        if not (candidate / "user_ids.npy").exists() and (candidate / "CURRENT").is_file():
            path = candidate / (candidate / "CURRENT").read_text().strip()
            break
    files = [path / "user_ids.npy", path / "song_ids.npy"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"no bundle ids at {bundle_dir}: missing {', '.join(missing)}")
    users, songs = (np.load(f, mmap_mode="r", allow_pickle=False) for f in files)
    return users, songs


class _Requests:
    """Draws the next (rpc name, request) under the mix."""

    def __init__(self, mix: Mapping[str, float], user_ids: IdList, song_ids: IdList,
                 k: int, acoustic_share: float | None = None, shares: Mapping[str, float] | None = None,
                 similar_source: str = "") -> None:
        self.names = list(mix)
        self.cum = np.cumsum([mix[n] for n in self.names]).tolist()
        self.cum[-1] = 1.0
        self.user_ids, self.song_ids, self.k = user_ids, song_ids, k
        # unset unless given: the server's default applies
        self.share = {} if acoustic_share is None else {"acoustic_share": float(acoustic_share)}
        if shares:
            self.share["shares"] = {str(n): float(v) for n, v in shares.items()}
        self.similar = {"source": similar_source} if similar_source else {}
        if _NEEDS_USERS & set(self.names) and len(user_ids) == 0:
            raise ValueError("the mix has recommend calls but there are no user ids: "
                             "pass --ids-from BUNDLE_DIR or --user-id")
        if _NEEDS_SONGS & set(self.names) and len(song_ids) == 0:
            raise ValueError("the mix has similar/song calls but there are no song ids: "
                             "pass --ids-from BUNDLE_DIR or --song-id")

    @staticmethod
    def _pick(ids: IdList, rng: random.Random) -> str:
        v = ids[rng.randrange(len(ids))]
        return v.decode() if isinstance(v, bytes) else str(v)

    def next(self, rng: random.Random) -> tuple[str, Any]:
        r = rng.random()
        name = self.names[-1]
        for n, c in zip(self.names, self.cum):
            if r < c:
                name = n
                break
        if name == "recommend":
            return name, pb.RecommendRequest(user_id=self._pick(self.user_ids, rng), k=self.k, **self.share)
        if name == "similar":
            return name, pb.SimilarSongsRequest(song_id=self._pick(self.song_ids, rng), k=self.k, **self.share,
                                                **self.similar)
        if name == "song":
            return name, pb.GetSongRequest(song_id=self._pick(self.song_ids, rng))
        if name == "info":
            return name, pb.GetBundleInfoRequest()
        return name, pb.PingRequest()


@dataclass
class _Recorder:
    """One worker's measurements (merged after the run; no locking needed)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)  # (rpc, code name) -> count

    def add(self, name: str, seconds: float, code: str | None) -> None:
        self.latencies.setdefault(name, []).append(seconds)
        if code is not None:
            self.errors[(name, code)] += 1


# -- engines ------------------------------------------------------------------------------------

def _methods(channel: Any) -> dict[str, Any]:
    stub = pb_grpc.RecommenderStub(channel)
    return {name: getattr(stub, method) for name, method in RPCS.items()}


def _code_name(err: grpc.RpcError) -> str:
    """A failed call's status code name (``"UNKNOWN"`` when the error carries none)."""
    code = err.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _caller(requests: _Requests, rng: random.Random, rec: _Recorder, t_start: float, t_end: float
            ) -> Generator[tuple[str, Any], str | None, None]:
    """One caller's closed loop, for either engine: yields the next ``(rpc name, request)`` and is
    sent the call's error code name (``None`` for success); records calls that started in the
    measured window; stops at ``t_end``."""
    while True:
        name, req = requests.next(rng)
        t0 = time.perf_counter()
        if t0 >= t_end:
            return
        code = yield name, req
        if t0 >= t_start:
            rec.add(name, time.perf_counter() - t0, code)


@dataclass(frozen=True)
class _Connection:
    """How to reach the server: TLS files (see :func:`pmrs.channel.channel_credentials`) and the
    metadata every call carries (a bearer token, or None)."""

    secure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    metadata: tuple[tuple[str, str], ...] | None = None


def _run_threads(target: str, concurrency: int, requests: _Requests, warmup_s: float,
                 duration_s: float, timeout_s: float, conn: _Connection, seed: int,
                 connect_timeout_s: float) -> tuple[list[_Recorder], float, float]:
    channel = make_channel(target, tls=conn.secure, retries=0, ca_file=conn.ca_file,
                           cert_file=conn.cert_file, key_file=conn.key_file)
    try:
        ready = grpc.channel_ready_future(channel)
        try:
            ready.result(timeout=connect_timeout_s)
        except grpc.FutureTimeoutError:
            ready.cancel()
            raise ConnectionError(f"cannot reach {target} within {connect_timeout_s:g} s") from None
        recorders = [_Recorder() for _ in range(concurrency)]
        t_start = time.perf_counter() + warmup_s
        t_end = t_start + duration_s

        def work(i: int) -> None:
            methods = _methods(channel)  # a stub per worker, over the shared channel
            loop = _caller(requests, random.Random(seed * 1_000_003 + i), recorders[i], t_start, t_end)
            try:
                name, req = next(loop)
                while True:
                    code = None
                    try:
                        methods[name](req, timeout=timeout_s, metadata=conn.metadata)
                    except grpc.RpcError as err:
                        code = _code_name(err)
                    name, req = loop.send(code)
            except StopIteration:
                return

        threads = [threading.Thread(target=work, args=(i,), name=f"pmrs-load-{i}", daemon=True)
                   for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return recorders, t_start, time.perf_counter()
    finally:
        channel.close()


async def _run_aio(target: str, concurrency: int, requests: _Requests, warmup_s: float,
                   duration_s: float, timeout_s: float, conn: _Connection, seed: int,
                   connect_timeout_s: float) -> tuple[list[_Recorder], float, float]:
    target, balance = channel_target(target)
    opts = [("grpc.enable_retries", 0), *balance]
    creds = channel_credentials(conn.secure, conn.ca_file, conn.cert_file, conn.key_file)
    channel = (grpc.aio.secure_channel(target, creds, options=opts)
               if creds is not None else grpc.aio.insecure_channel(target, options=opts))
    async with channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=connect_timeout_s)
        except asyncio.TimeoutError:
            raise ConnectionError(f"cannot reach {target} within {connect_timeout_s:g} s") from None
        methods = _methods(channel)
        recorders = [_Recorder() for _ in range(concurrency)]
        t_start = time.perf_counter() + warmup_s
        t_end = t_start + duration_s

        async def work(i: int) -> None:
            loop = _caller(requests, random.Random(seed * 1_000_003 + i), recorders[i], t_start, t_end)
            try:
                name, req = next(loop)
                while True:
                    code = None
                    try:
                        await methods[name](req, timeout=timeout_s, metadata=conn.metadata)
                    except grpc.RpcError as err:
                        code = _code_name(err)
                    name, req = loop.send(code)
            except StopIteration:
                return

        await asyncio.gather(*(work(i) for i in range(concurrency)))
        return recorders, t_start, time.perf_counter()


# -- the run ------------------------------------------------------------------------------------

def _stats(latencies: Sequence[float], errors: Mapping[str, int], elapsed_s: float) -> dict:
    calls = len(latencies)
    n_err = sum(errors.values())
    out: dict[str, Any] = {
        "calls": calls,
        "ok": calls - n_err,
        "errors": dict(sorted(errors.items())),
        "qps": calls / elapsed_s if elapsed_s > 0 else 0.0,
        "ok_qps": (calls - n_err) / elapsed_s if elapsed_s > 0 else 0.0,
        "latency_ms": None,
    }
    if calls:
        ms = np.asarray(latencies, dtype=np.float64) * 1e3
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        out["latency_ms"] = {"p50": float(p50), "p95": float(p95), "p99": float(p99),
                             "max": float(ms.max()), "mean": float(ms.mean())}
    return out


def run_loadtest(target: str, concurrency: int, duration_s: float,
                 mix: Mapping[str, float] | str | None = None, user_ids: IdList = (),
                 song_ids: IdList = (), *, k: int = 10, acoustic_share: float | None = None,
                 shares: Mapping[str, float] | None = None, similar_source: str = "",
                 warmup_s: float = 0.0,
                 timeout_s: float = 5.0, engine: str = "aio", secure: bool = False, seed: int = 0,
                 connect_timeout_s: float = 5.0, token: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None) -> dict[str, Any]:
    """Load a PMRS server for a fixed duration and measure throughput and latency.

    Parameters
    ----------
    target : str
        ``HOST:PORT`` of the server.
    concurrency : int
        Concurrent callers (threads or coroutines), each with one call in flight.
    duration_s : float
        Measured duration in seconds (after the warm-up).
    mix : mapping of str to float, or str, or None
        Weights of the methods (names of :data:`RPCS`), e.g. ``{"recommend": 0.7,
        "similar": 0.3}`` or ``"recommend=0.7,similar=0.3"``; None: :data:`DEFAULT_MIX`.
        ``{"ping": 1}`` measures the transport alone.
    user_ids, song_ids : sequence of str or ``S`` array
        Ids to draw requests from, uniformly (e.g. from :func:`load_ids`).
    k : int
        ``k`` of Recommend and SimilarSongs requests.
    acoustic_share : float or None
        ``acoustic_share`` of Recommend and SimilarSongs requests; None leaves it unset (the
        server's default).
    shares : mapping of str to float, or None
        ``shares`` of Recommend and SimilarSongs requests by source name (None: unset).
    similar_source : str
        ``source`` of SimilarSongs requests (one source's neighbours); empty: mixed.
    warmup_s : float
        Seconds of calls before the measurement, not recorded.
    timeout_s : float
        Deadline of each call in seconds.
    engine : {"aio", "threads"}
        ``grpc.aio`` coroutines or blocking threads, over one shared channel.
    secure : bool
        TLS instead of plaintext (implied by ``ca_file`` or ``cert_file``).
    token : str, optional
        Bearer token sent with every call (a server with a read token needs it); default
        ``$PMRS_TOKEN``.
    ca_file, cert_file, key_file : path, optional
        Root certificates to trust (default: the system's), and the client's certificate and
        key for a server that requires them (mutual TLS).
    seed : int
        Seed of the request sampling.
    connect_timeout_s : float
        How long to wait for the channel to connect before giving up.

    Returns
    -------
    dict
        ``target, engine, concurrency, duration_s, warmup_s, elapsed_s, mix, k, timeout_s, date,
        client_cpu_percent``, ``overall`` and ``rpcs`` (per method), each with ``calls, ok,
        errors`` (status code name -> count), ``qps, ok_qps`` and ``latency_ms`` (``p50, p95,
        p99, max, mean``; None without calls).

    Raises
    ------
    ValueError
        Bad settings, or a mix that needs ids that were not given.
    ConnectionError
        The target could not be reached within ``connect_timeout_s``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if duration_s <= 0 or warmup_s < 0 or timeout_s <= 0:
        raise ValueError("need duration_s > 0, warmup_s >= 0, timeout_s > 0")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if mix is None:
        mix = dict(DEFAULT_MIX)
    mix = parse_mix(mix) if isinstance(mix, str) else _normalise_mix(mix)
    if acoustic_share is not None and not 0.0 <= acoustic_share <= 1.0:
        raise ValueError(f"acoustic_share must be in [0, 1], got {acoustic_share}")
    requests = _Requests(mix, user_ids, song_ids, k, acoustic_share, shares, similar_source)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log.info("load test of %s: %s engine, concurrency %d, %.1f s (+%.1f s warm-up), mix %s",
             target, engine, concurrency, duration_s, warmup_s, mix)

    cpu0 = time.process_time()
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together")
    conn = _Connection(secure, ca_file, cert_file, key_file, auth_metadata(token))
    args = (target, concurrency, requests, warmup_s, duration_s, timeout_s, conn, seed,
            connect_timeout_s)
    if engine == "threads":
        recorders, t_start, t_done = _run_threads(*args)
    else:
        recorders, t_start, t_done = asyncio.run(_run_aio(*args))
    cpu_s = time.process_time() - cpu0
    elapsed = max(t_done - t_start, 1e-9)

    per_rpc: dict[str, dict[str, Any]] = {}
    all_lat: list[float] = []
    all_err: Counter = Counter()
    for name in mix:
        lat = [x for r in recorders for x in r.latencies.get(name, ())]
        err: Counter = Counter()
        for r in recorders:
            for (n, code), c in r.errors.items():
                if n == name:
                    err[code] += c
        per_rpc[name] = _stats(lat, err, elapsed)
        all_lat.extend(lat)
        all_err.update(err)
    return {
        "target": target,
        "engine": engine,
        "concurrency": concurrency,
        "duration_s": float(duration_s),
        "warmup_s": float(warmup_s),
        "elapsed_s": elapsed,
        "mix": mix,
        "k": k,
        "acoustic_share": acoustic_share,
        "shares": dict(shares or {}),
        "similar_source": similar_source,
        "timeout_s": float(timeout_s),
        "date": date,
        "client_cpu_percent": 100.0 * cpu_s / (elapsed + warmup_s),
        "overall": _stats(all_lat, all_err, elapsed),
        "rpcs": per_rpc,
    }


# -- output -------------------------------------------------------------------------------------

def format_report(report: Mapping[str, Any]) -> str:
    """The report as a readable text table (one row per method, then ``all``)."""
    mix = ", ".join(f"{n}={w:.2f}" for n, w in report["mix"].items())
    lines = [
        f"target {report['target']}  engine {report['engine']}  concurrency "
        f"{report['concurrency']}  duration {report['duration_s']:g} s (warm-up "
        f"{report['warmup_s']:g} s)  mix {mix}  client CPU {report['client_cpu_percent']:.0f} %",
        "",
    ]
    header = ["rpc", "calls", "errors", "qps", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    rows = []
    rows_src = list(report["rpcs"].items()) + [("all", report["overall"])]
    for name, s in rows_src:
        lat = s["latency_ms"] or {}
        rows.append([name, str(s["calls"]), str(sum(s["errors"].values())), f"{s['qps']:.1f}",
                     *(f"{lat[p]:.2f}" if lat else "-" for p in ("p50", "p95", "p99", "max"))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    lines.append(fmt(header))
    lines.extend(fmt(r) for r in rows)
    errors = report["overall"]["errors"]
    lines.append("")
    lines.append("errors: " + (", ".join(f"{c} {n}" for c, n in errors.items()) if errors
                               else "none"))
    return "\n".join(lines)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- command line -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``pmrs-loadtest`` argument parser."""
    p = argparse.ArgumentParser(prog="pmrs-loadtest",
                                description="Closed-loop load test of a PMRS gRPC server.")
    p.add_argument("--target", default="127.0.0.1:50051",
                   help="HOST:PORT, or replicas IP:PORT,IP:PORT,... balanced round robin (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent callers (default: 8)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds (default: 10)")
    p.add_argument("--warmup", type=float, default=1.0, 
                   help="unrecorded seconds first (default: 1)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--mix", help="method weights, e.g. recommend=0.7,similar=0.3 "
                                    f"(methods: {', '.join(RPCS)}; default: recommend=0.7,"
                                    "similar=0.3)")
    what.add_argument("--rpc", choices=list(RPCS), help="call one method only "
                                                        "(--rpc ping: the transport baseline)")
    p.add_argument("-k", "--k", type=int, default=10,
                   help="k of Recommend/SimilarSongs (default: 10)")
    p.add_argument("--acoustic-share", type=float,
                   help="acoustic_share of Recommend/SimilarSongs (default: unset, the server's)")
    p.add_argument("--timeout", type=float, default=5.0, help="deadline per call, s (default: 5)")
    p.add_argument("--engine", choices=ENGINES, default="aio",
                   help="grpc.aio coroutines or blocking threads (default: aio)")
    p.add_argument("--ids-from", metavar="BUNDLE_DIR",
                   help="draw ids from a bundle (or a bundles/ dir, or a workdir: CURRENT)")
    p.add_argument("--user-id", nargs="+", action="extend", default=[], metavar="ID",
                   help="user ids to draw from")
    p.add_argument("--song-id", nargs="+", action="extend", default=[], metavar="ID",
                   help="song ids to draw from")
    p.add_argument("--seed", type=int, default=0, help="request sampling seed")
    connection_args(p)
    p.add_argument("--secure", dest="tls", action="store_true", help="the same as --tls")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pmrs-loadtest``; returns the exit code (0 ok, 1 failure, 2 usage)."""
    def command(args: argparse.Namespace) -> int:
        mix: Any = {args.rpc: 1.0} if args.rpc else (parse_mix(args.mix) if args.mix else None)
        users: IdList = list(args.user_id)
        songs: IdList = list(args.song_id)
        if args.ids_from:
            b_users, b_songs = load_ids(args.ids_from)
            users = users or b_users
            songs = songs or b_songs
        report = run_loadtest(args.target, args.concurrency, args.duration, mix, users, songs,
                              k=args.k, acoustic_share=args.acoustic_share, warmup_s=args.warmup,
                              timeout_s=args.timeout, engine=args.engine, secure=args.tls, seed=args.seed,
                              token=read_token(args.token_file), ca_file=args.ca_file,
                              cert_file=args.cert_file, key_file=args.key_file)
        print(format_report(report))
        if args.json:
            write_json_atomic(args.json, report)
        return 0

    return run_cli("pmrs-loadtest", build_parser(), command, argv, failures=(ConnectionError,))


if __name__ == "__main__":
    sys.exit(main())
