"""``pmrs-server``: the gRPC recommender over ``<workdir>/bundles/CURRENT``.

``serve()`` starts a server and returns at once (tests and the demo call it directly); ``main()`` is
the command line. A watcher thread polls ``bundles/CURRENT`` (SIGHUP forces a check) and swaps a
newly built bundle in without failing calls in flight. Until a bundle exists the service answers
UNAVAILABLE and the health status is NOT_SERVING. SIGTERM or SIGINT: health goes NOT_SERVING, new
calls are refused, calls in flight get a grace period to finish, and the process exits 0.

Settings (``[server]`` in a TOML file, flags override): see :class:`ServerConfig`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pmrs import config as cfgmod
from pmrs.recommender import Recommender
from pmrs.serving import contract
from pmrs.serving.contract import read_current
from pmrs.v1 import recommender_pb2_grpc as pb_grpc

from .servicer import SERVICE_NAME, BundleHolder, RecommenderServicer

log = logging.getLogger("pmrs.server")

#: A version that failed to open is tried again after this long (or at once on SIGHUP).
RETRY_FAILED_SECONDS = 30


@dataclass
class ServerConfig:
    """``[server]`` settings."""

    bind: str = "127.0.0.1:50051"         # host:port; port 0 picks a free port
    workers: int = 2                      # threads answering calls (one per core; see ARCHITECTURE)
    max_message_mb: int = 16              # largest request or response, MiB
    default_acoustic_share: float | None = None  # overrides the bundle's default share (then computes)
    default_diversity: float | None = None       # overrides the bundle's default Recommend diversity
    poll_seconds: float = 2.0             # how often bundles/CURRENT is checked
    grace_seconds: float = 10.0           # on SIGTERM: time calls in flight get to finish
    blas_threads: int = 1                 # numpy's BLAS threads (a call's products are tiny)
    compute_slots: int = 1                # Recommend/SimilarSongs computing at once (0: no limit)


class BundleWatcher:
    """Polls ``bundles/CURRENT`` and swaps a new version into ``holder``; ``check_now()`` wakes it."""

    def __init__(self, workdir: str | os.PathLike, holder: BundleHolder, poll_seconds: float,
                 on_change=None, defaults: contract.Defaults | dict | None = None):
        self.workdir, self.holder, self.poll_seconds = Path(workdir), holder, float(poll_seconds)
        self.defaults = defaults or {}   # overrides of the bundle's request defaults
        self.on_change = on_change or (lambda bundle: None)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._failed: tuple[str, float] | None = None   # (version, when it failed to open)
        self._loaded: str | None = None                  # the name CURRENT held when we loaded
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pmrs-bundle-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def check_now(self) -> None:
        """Make the watcher look at CURRENT now (retrying a version that failed to open)."""
        self._failed = None
        self._wake.set()

    def check(self) -> bool:
        """Load the version CURRENT names if it is not the one served; True when it swapped."""
        with self._lock:
            version = read_current(self.workdir)
            if version is None or version == self._loaded:
                return False
            if (self._failed and self._failed[0] == version
                    and time.monotonic() - self._failed[1] < RETRY_FAILED_SECONDS):
                return False
            path = contract.bundles_dir(self.workdir) / version
            try:
                bundle = Recommender.open(path)
                if self.defaults:  # the server's flags override the bundle's defaults
                    changes = dict(self.defaults)
                    if "shares" in changes:
                        changes["shares"] = {**bundle.defaults.shares, **changes["shares"]}
                    bundle = Recommender(bundle.bundle, bundle.defaults.replace(**changes))
            except Exception as exc:
                self._failed = (version, time.monotonic())
                log.error("cannot open bundle %s (still serving %s; retrying in %d s, at once on "
                          "SIGHUP or when CURRENT changes): %s", path, self.holder.version or "nothing",
                          RETRY_FAILED_SECONDS, exc)
                return False
            old = self.holder.version
            self.holder.swap(bundle)
            self._loaded, self._failed = version, None
            log.info("serving bundle %s%s", bundle.version, f" (was {old})" if old else "")
            self.on_change(bundle)
            return True

    def _run(self) -> None:
        while True:
            self._wake.clear()  # a wake-up during the check below triggers the next one at once
            if self._stop.is_set():  # (stop() sets _stop before _wake: no lost wake-up)
                return
            try:
                self.check()
            except Exception:  # the watcher must outlive any one bad check
                log.exception("bundle check failed")
            self._wake.wait(self.poll_seconds)


class RunningServer:
    """A started server: ``address`` (host:port), ``port``, ``holder``, ``reload()``, ``stop()``."""

    def __init__(self, server: grpc.Server, host: str, port: int, holder: BundleHolder,
                 health_servicer: health.HealthServicer, watcher: BundleWatcher):
        self.server, self.host, self.port = server, host, port
        self.holder, self.health, self.watcher = holder, health_servicer, watcher
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def reload(self) -> None:
        """Check CURRENT now (what SIGHUP does)."""
        self.watcher.check_now()

    def stop(self, grace: float | None = 10.0) -> None:
        """Health NOT_SERVING, refuse new calls, let calls in flight finish within ``grace`` seconds,
        then close the bundle."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.watcher.stop()
        log.info("stopping: draining calls in flight (grace %s s)", grace)
        self.server.stop(grace).wait()
        self.holder.close()
        log.info("stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` has run (or ``timeout``); True when stopped."""
        return self._stopped.wait(timeout)


def _split_bind(bind: str) -> str:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    return host


def serve(workdir: str | os.PathLike, bind: str = "127.0.0.1:50051", workers: int = 2,
          default_acoustic_share: float | None = None, default_diversity: float | None = None,
          poll_seconds: float = 2.0, max_message_mb: int = 16,
          blas_threads: int | None = None, compute_slots: int = 1) -> RunningServer:
    """Start the recommender on ``bind`` over ``<workdir>/bundles/CURRENT`` and return at once.

    The bundle CURRENT names (if any) is loaded before the port opens; without one the service
    answers UNAVAILABLE until the watcher finds one. The standard health service (names "" and
    "pmrs.v1.Recommender") and server reflection are registered. Port 0 picks a free port
    (``RunningServer.port``). ``blas_threads``: limit numpy's BLAS to that many threads, process
    wide (``pmrs-server`` passes 1: concurrent calls are the parallelism, and a threaded BLAS
    under them only contends; MMR's matrix-vector products ran 8 ms instead of 0.13 ms each with
    OpenBLAS's threads on 2 busy cores). ``None`` leaves BLAS alone.
    """
    host = _split_bind(bind)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_message_mb < 1:
        raise ValueError(f"max_message_mb must be >= 1, got {max_message_mb}")
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(blas_threads), user_api="blas")
    holder = BundleHolder()
    servicer = RecommenderServicer(holder, compute_slots)
    overrides = {}
    if default_acoustic_share is not None:
        overrides["shares"] = {contract.ACOUSTIC: default_acoustic_share}
    if default_diversity is not None:
        overrides["diversity"] = default_diversity
    contract.Defaults().replace(**overrides)  # validated before the port opens
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmrs-health"))

    def set_health(bundle) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if bundle is not None \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, status)

    set_health(None)

    size = int(max_message_mb) * 1024 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pmrs-rpc"),
        # no SO_REUSEPORT: a second server on a busy port must fail, not share it silently
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size),
                 ("grpc.so_reuseport", 0)])
    pb_grpc.add_RecommenderServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server)
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {bind}: {exc}") from None
    if not port:
        raise OSError(f"cannot listen on {bind}")

    watcher = BundleWatcher(workdir, holder, poll_seconds, on_change=set_health, defaults=overrides)
    try:
        watcher.check()
        if holder.bundle is None:
            log.warning("no bundle in %s yet (run `indexer build`): answering UNAVAILABLE until one "
                        "appears", contract.bundles_dir(workdir))
        server.start()
        watcher.start()
    except BaseException:
        server.stop(None)
        holder.close()
        raise
    running = RunningServer(server, host, port, holder, health_servicer, watcher)
    log.info("listening on %s:%d, serving bundle %s", host, port, holder.version or "none yet")
    return running


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pmrs-server", description="PMRS gRPC recommender server")
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file ([server] table); flags override it")
    p.add_argument("--bind", help="HOST:PORT to listen on (default 127.0.0.1:50051; port 0: any free port)")
    p.add_argument("--workers", type=int, help="threads answering calls (default 2)")
    p.add_argument("--compute-slots", type=int,
                   help="Recommend/SimilarSongs calls computing at once (default 1; 0: no limit)")
    p.add_argument("--max-message-mb", type=int, help="largest request or response in MiB (default 16)")
    p.add_argument("--default-acoustic-share", type=float, help="acoustic share when a request leaves it unset")
    p.add_argument("--default-diversity", type=float, help="MMR diversity when a Recommend request leaves it unset")
    p.add_argument("--poll-seconds", type=float, help="how often bundles/CURRENT is checked (default 2)")
    p.add_argument("--grace-seconds", type=float, help="on SIGTERM, time calls in flight get (default 10)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # FAISS's OpenMP must not spin on 2 cores
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader reports every CPU variant tried
    try:
        cfg = cfgmod.build(ServerConfig, "server", cfgmod.load_toml(args.config), vars(args))
        workdir = cfgmod.resolve_workdir(args.workdir)
        running = serve(workdir, bind=cfg.bind, workers=cfg.workers,
                        default_acoustic_share=cfg.default_acoustic_share,
                        default_diversity=cfg.default_diversity, poll_seconds=cfg.poll_seconds,
                        max_message_mb=cfg.max_message_mb, blas_threads=cfg.blas_threads,
                        compute_slots=cfg.compute_slots)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"pmrs-server: error: {exc}", file=sys.stderr)
        return 2
    log.info("settings: %s; work directory %s", asdict(cfg), workdir)

    stop = threading.Event()

    def on_stop(signum, frame) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda signum, frame: running.reload())
    print(f"pmrs-server listening on {running.address}", flush=True)
    while not stop.wait(1.0):
        pass
    running.stop(cfg.grace_seconds)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
