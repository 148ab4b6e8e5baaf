"""``pmrs-server``: the gRPC recommender over ``<workdir>/bundles/CURRENT``.

``serve()`` starts a server and returns at once (tests and the demo call it directly); ``main()`` is
the command line. A watcher thread polls ``bundles/CURRENT`` (SIGHUP forces a check) and swaps a
newly built bundle in without failing calls in flight. Until a bundle exists the service answers
UNAVAILABLE and the health status is NOT_SERVING. SIGTERM or SIGINT: health goes NOT_SERVING, new
calls are refused, calls in flight get a grace period to finish, and the process exits 0. The
transport (a grpc.aio server; its limits) is ``server.transport``. Plaintext is served on loopback
only, unless ``--insecure``; ``--tls-cert``/``--tls-key`` serve TLS on any address.

Settings (``[server]`` in a TOML file, flags override): see :class:`ServerConfig`.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # (health.aio: the asyncio servicer)
from grpc_reflection.v1alpha import reflection

from pmrs import config as cfgmod
from pmrs.entry import run_cli
from pmrs.recommender import Recommender
from pmrs.serving import contract
from pmrs.serving.contract import CURRENT_FILE, ContractError, read_current
from pmrs.live.log import LogUnavailable, WriteLog
from pmrs.telemetry import ServerMetrics, serve_metrics

from .auth import READ_TOKEN_ENV, WRITE_TOKEN_ENV, Auth
from .servicer import SERVICE_NAME, BundleHolder, RecommenderServicer
from .transport import WRITE_WORKERS, LoopThread, WorkerPool, recommender_handler, server_options

log = logging.getLogger("pmrs.server")

#: A version that failed to open is tried again after this long (or at once on SIGHUP).
RETRY_FAILED_SECONDS = 30


@dataclass(frozen=True)
class ServerConfig:
    """``[server]`` settings, validated when made (``ValueError`` naming the setting)."""

    bind: str = "127.0.0.1:50051"         # host:port; port 0 picks a free port
    workers: int = 2                      # threads running Recommend/SimilarSongs (see ARCHITECTURE)
    max_message_mb: int = 20              # largest request or response, MiB (an AddSong clip is at most 16)
    default_acoustic_share: float | None = None  # overrides the bundle's default share (then computes)
    default_diversity: float | None = None       # overrides the bundle's default Recommend diversity
    poll_seconds: float = 2.0             # how often bundles/CURRENT is checked
    grace_seconds: float = 10.0           # on SIGTERM: time calls in flight get to finish
    blas_threads: int = 1                 # numpy's BLAS threads (a call's products are tiny)
    compute_slots: int = 1                # Recommend/SimilarSongs computing at once (0: no limit)
    tls_cert: str | None = None           # PEM certificate (chain) file: serve TLS
    tls_key: str | None = None            # its PEM private key file
    tls_client_ca: str | None = None      # PEM CA file: require client certificates it signed
    insecure: bool = False                # allow plaintext on an address other than loopback
    write_token_file: str | None = None   # file holding the write token (else $PMRS_WRITE_TOKEN)
    read_token_file: str | None = None    # file holding the read token (else $PMRS_READ_TOKEN; none: open reads)
    live: bool = True                     # apply the work directory's write log (live/writes.sqlite)
    live_poll_seconds: float = 0.05       # how often writes of other processes are looked for
    metrics_bind: str = "127.0.0.1:0"     # Prometheus metrics (HOST:PORT; port 0: any free port; "": none)
    metrics_public: bool = False          # allow metrics on an address other than loopback

    def __post_init__(self) -> None:
        _split_bind(self.bind)
        for name, low in (("workers", 1), ("max_message_mb", 1), ("blas_threads", 1), ("compute_slots", 0)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not self.live_poll_seconds > 0:
            raise ValueError(f"live_poll_seconds must be > 0, got {self.live_poll_seconds}")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (client certificates are a TLS feature)")
        if not self.poll_seconds > 0 or not self.grace_seconds >= 0:
            raise ValueError(f"poll_seconds must be > 0 and grace_seconds >= 0, got {self.poll_seconds} "
                             f"and {self.grace_seconds}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together (a PEM certificate and its key)")
        contract.Defaults().replace(**self.default_overrides())  # shares and diversity in [0, 1]

    def default_overrides(self) -> dict:
        """The request defaults these settings change (``contract.Defaults.replace`` keywords)."""
        out: dict = {}
        if self.default_acoustic_share is not None:
            out["shares"] = {contract.ACOUSTIC: self.default_acoustic_share}
        if self.default_diversity is not None:
            out["diversity"] = self.default_diversity
        return out


class BundleWatcher:
    """Polls ``bundles/CURRENT`` and swaps a new version into ``holder``; ``check_now()`` wakes it.

    What CURRENT says is read by :func:`pmrs.serving.contract.read_current` only. Each distinct state (missing,
    unreadable for a given reason, a version that fails to open with a given error, back to
    normal) is logged once, not at every poll; whatever the state, the bundle being served
    stays until another one opens.
    """

    def __init__(self, workdir: str | os.PathLike, holder: BundleHolder, poll_seconds: float,
                 on_change=None, defaults: contract.Defaults | dict | None = None, live=None,
                 warm_up: bool = False):
        self.workdir, self.holder, self.poll_seconds = Path(workdir), holder, float(poll_seconds)
        self.live = live                 # the work directory's WriteLog (None: no live writes)
        self.warm_up = warm_up           # load the models that add songs when a bundle opens
        self.defaults = defaults or {}   # overrides of the bundle's request defaults
        self.on_change = on_change or (lambda bundle: None)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._failed: tuple[str, float] | None = None   # (version, when it failed to open)
        self._loaded: str | None = None                  # the name CURRENT held when we loaded
        self._state: tuple | None = None                 # the last state logged
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

    def _note(self, state: tuple, level: int, message: str, *args) -> None:
        """Log ``message`` if ``state`` differs from the last state logged."""
        if state != self._state:
            self._state = state
            log.log(level, message, *args)

    def _serving(self) -> str:
        return (f"still serving {self.holder.version}" if self.holder.version
                else "no bundle loaded: answering UNAVAILABLE")

    def check(self) -> bool:
        """Load the version CURRENT names if it is not the one served; True when it swapped."""
        with self._lock:
            bundles = contract.bundles_dir(self.workdir)
            try:
                version = read_current(self.workdir)
            except ContractError as exc:
                self._note(("unreadable", str(exc)), logging.ERROR, "%s (%s)", exc, self._serving())
                return False
            if version is None:
                if self.holder.version:
                    self._note(("missing",), logging.ERROR, "%s is missing (%s; a restart would "
                               "serve nothing until it is restored)", bundles / CURRENT_FILE,
                               self._serving())
                else:
                    self._note(("missing",), logging.WARNING, "no bundle in %s yet (run `indexer "
                               "build`): answering UNAVAILABLE until one appears", bundles)
                return False
            if version == self._loaded:
                self._note(("ok", version), logging.INFO, "%s names %s again (being served)",
                           bundles / CURRENT_FILE, version)
                return False
            if (self._failed and self._failed[0] == version
                    and time.monotonic() - self._failed[1] < RETRY_FAILED_SECONDS):
                return False
            path = bundles / version
            try:
                # checksums + validation: never serve damage; then the logged writes after it
                bundle = Recommender.open(path, verify=True, live=self.live or False, warm_up=self.warm_up)
                if self.defaults:  # the server's flags override the bundle's defaults
                    try:
                        bundle = Recommender(bundle.bundle, bundle.defaults.replace(**self.defaults),
                                             live=bundle.live)
                    except BaseException:
                        bundle.close()
                        raise
            except Exception as exc:
                self._failed = (version, time.monotonic())
                self._note(("failed", version, str(exc)), logging.ERROR,
                           "cannot open bundle %s (%s; retrying every %d s, at once on SIGHUP or "
                           "when CURRENT changes): %s", path, self._serving(), RETRY_FAILED_SECONDS, exc)
                return False
            old = self.holder.version
            self.holder.swap(bundle)
            self._loaded, self._failed = version, None
            self._state = ("ok", version)
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
            except Exception as exc:  # the watcher must outlive any one bad check
                self._note(("check failed", repr(exc)), logging.ERROR, "bundle check failed: %r", exc)
            self._wake.wait(self.poll_seconds)


class LivePoller:
    """Applies the writes other processes log (replicas over one work directory) to the served
    recommender every ``poll_seconds``: a write accepted elsewhere is visible here within about
    that long (docs/LIVE.md states the bound measured)."""

    def __init__(self, holder: BundleHolder, poll_seconds: float):
        self.holder, self.poll_seconds = holder, float(poll_seconds)
        self._stop = threading.Event()
        self._failing: str | None = None
        self._thread = threading.Thread(target=self._run, name="pmrs-live-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                with self.holder.use() as rec:
                    if rec is not None:
                        rec.refresh()
                if self._failing:
                    log.info("the write log can be read again")
                    self._failing = None
            except Exception as exc:   # the poller outlives a log that cannot be read for a while
                if str(exc) != self._failing:
                    self._failing = str(exc)
                    log.error("cannot read the write log (reads go on without newer writes): %s", exc)


class RunningServer:
    """A started server: ``address`` (host:port), ``port``, ``holder``, ``reload()``, ``stop()``."""

    def __init__(self, server: grpc.aio.Server, loop: LoopThread, pool: WorkerPool,
                 host: str, port: int, holder: BundleHolder, health_servicer, watcher: BundleWatcher,
                 poller: LivePoller | None = None, write_log=None, write_pool: WorkerPool | None = None,
                 metrics: ServerMetrics | None = None, endpoint=None):
        self.server, self.loop, self.pool, self.host, self.port = server, loop, pool, host, port
        self.holder, self.health, self.watcher = holder, health_servicer, watcher
        self.poller, self.write_log, self.write_pool = poller, write_log, write_pool
        self.metrics, self.endpoint = metrics, endpoint
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus metrics are scraped (``None`` when they are not served)."""
        return self.endpoint.url if self.endpoint is not None else None

    def reload(self) -> None:
        """Check CURRENT now (what SIGHUP does)."""
        self.watcher.check_now()

    def stop(self, grace: float | None = 10.0) -> None:
        """Health NOT_SERVING, refuse new calls, let calls in flight finish within ``grace`` seconds,
        then close the bundle."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.loop.run(self.health.enter_graceful_shutdown())
        self.watcher.stop()
        if self.poller is not None:
            self.poller.stop()
        log.info("stopping: draining calls in flight (grace %s s)", grace)
        self.loop.run(self.server.stop(grace))
        self.loop.stop()
        self.pool.shutdown()
        if self.write_pool is not None:
            self.write_pool.shutdown()
        self.holder.close()  # (a call still computing keeps its bundle open until it returns)
        if self.write_log is not None:
            self.write_log.close()
        if self.endpoint is not None:
            self.endpoint.stop()
        log.info("stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` has run (or ``timeout``); True when stopped."""
        return self._stopped.wait(timeout)


def _split_bind(bind: str) -> str:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    return host


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``, bracketed or
    not); any other name or address (``0.0.0.0``, ``::``, a LAN address, a host name) is not."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_credentials(tls_cert: str | os.PathLike | None, tls_key: str | os.PathLike | None,
                       bind: str, insecure: bool,
                       client_ca: str | os.PathLike | None = None) -> grpc.ServerCredentials | None:
    """TLS credentials from a PEM certificate (chain) and key file, or ``None`` for plaintext.

    Plaintext on an address other than loopback is refused (``ValueError``) unless ``insecure``;
    then it is logged as a warning. Missing files raise ``FileNotFoundError``. ``client_ca``: a
    PEM CA file; clients must then present a certificate it signed (mutual TLS).
    """
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together (a PEM certificate and its key)")
    host = _split_bind(bind)
    if tls_cert is None:
        if not is_loopback(host):
            if not insecure:
                raise ValueError(
                    f"refusing to serve plaintext on {bind}, which is not a loopback address: give "
                    "--tls-cert and --tls-key, or --insecure to serve it unencrypted and "
                    "unauthenticated anyway")
            log.warning("serving PLAINTEXT on %s (--insecure): anyone who can reach it can call it "
                        "and read the traffic", bind)
        return None
    cert, key = Path(tls_cert).read_bytes(), Path(tls_key).read_bytes()
    if client_ca is not None:
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=Path(client_ca).read_bytes(),
                                           require_client_auth=True)
    return grpc.ssl_server_credentials([(key, cert)])


def serve(workdir: str | os.PathLike, bind: str = "127.0.0.1:50051", workers: int = 2,
          default_acoustic_share: float | None = None, default_diversity: float | None = None,
          poll_seconds: float = 2.0, max_message_mb: int = 20,
          blas_threads: int | None = None, compute_slots: int = 1,
          tls_cert: str | os.PathLike | None = None, tls_key: str | os.PathLike | None = None,
          insecure: bool = False, auth: Auth | None = None, live: bool = True,
          live_poll_seconds: float = 0.05, tls_client_ca: str | os.PathLike | None = None,
          metrics_bind: str | None = "127.0.0.1:0", metrics_public: bool = False) -> RunningServer:
    """Start the recommender on ``bind`` over ``<workdir>/bundles/CURRENT`` and return at once.

    The bundle CURRENT names (if any) is loaded before the port opens; without one the service
    answers UNAVAILABLE until the watcher finds one. The standard health service (names "" and
    "pmrs.v1.Recommender") and server reflection are registered. Port 0 picks a free port
    (``RunningServer.port``). The transport is ``server.transport`` (a grpc.aio server on a loop
    thread; ``workers`` threads run Recommend and SimilarSongs). ``blas_threads``: limit numpy's
    BLAS to that many threads, process wide (``pmrs-server`` passes 1: concurrent calls are the
    parallelism, and a threaded BLAS under them only contends; MMR's matrix-vector products ran
    8 ms instead of 0.13 ms each with OpenBLAS's threads on 2 busy cores). ``None`` leaves BLAS
    alone. ``tls_cert`` / ``tls_key``: PEM files; serve TLS. Without them a bind address other
    than loopback is refused (``ValueError``) unless ``insecure``. ``auth``: the tokens
    (``server.auth``; ``None``: the environment's, else open reads and no writes). ``live``: apply
    and take writes through the work directory's write log (a work directory that cannot hold
    one is served without; writes are then refused), polled every ``live_poll_seconds``.
    ``metrics_bind``: where the Prometheus metrics (``server.metrics``) are served (``None`` or
    ``""``: nowhere; off loopback only with ``metrics_public``); ``RunningServer.metrics_url``.
    """
    cfg = ServerConfig(bind=bind, workers=workers, max_message_mb=max_message_mb,
                       default_acoustic_share=default_acoustic_share, default_diversity=default_diversity,
                       poll_seconds=poll_seconds, blas_threads=blas_threads or 1, compute_slots=compute_slots,
                       tls_cert=None if tls_cert is None else str(tls_cert),
                       tls_key=None if tls_key is None else str(tls_key), insecure=insecure, live=live,
                       live_poll_seconds=live_poll_seconds,
                       tls_client_ca=None if tls_client_ca is None else str(tls_client_ca))
    host = _split_bind(bind)
    credentials = server_credentials(tls_cert, tls_key, bind, insecure, tls_client_ca)
    auth = auth if auth is not None else Auth.from_config()
    write_log = None
    if live:
        try:
            write_log = WriteLog.of(workdir)
        except (OSError, LogUnavailable) as exc:
            log.warning("no write log in %s (%s): serving without live writes", workdir, exc)
    if auth.accepts_writes and write_log is None:
        log.warning("a write token is set but there is no write log: writes will be refused")
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(blas_threads), user_api="blas")
    holder = BundleHolder()
    metrics = ServerMetrics()
    metrics.watch(lambda: _served_state(holder, write_log))
    servicer = RecommenderServicer(holder, compute_slots, accepts_writes=auth.accepts_writes, metrics=metrics)
    overrides = cfg.default_overrides()
    pool = WorkerPool(workers)
    write_pool = WorkerPool(WRITE_WORKERS, name="pmrs-write")
    loop = LoopThread()

    async def make_server():
        server = grpc.aio.server(options=server_options(int(max_message_mb) * 1024 * 1024))
        server.add_generic_rpc_handlers((recommender_handler(servicer, pool, auth=auth, write_pool=write_pool,
                                                             metrics=metrics),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server)
        return server, health_servicer

    async def set_status(health_servicer, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, status)

    server = endpoint = None
    try:
        endpoint = serve_metrics(metrics.registry, metrics_bind, metrics_public) if metrics_bind else None
        server, health_servicer = loop.run(make_server())
        loop.run(set_status(health_servicer, False))
        try:
            port = (server.add_secure_port(bind, credentials) if credentials is not None
                    else server.add_insecure_port(bind))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {bind}: {exc}") from None
        if not port:
            raise OSError(f"cannot listen on {bind}")
        servicer.identity = f"{host}:{port} pid {os.getpid()}"
        servicer.metrics_url = endpoint.url if endpoint is not None else ""
        watcher = BundleWatcher(
            workdir, holder, poll_seconds,
            on_change=lambda bundle: loop.run(set_status(health_servicer, bundle is not None)),
            defaults=overrides, live=write_log, warm_up=auth.accepts_writes and write_log is not None)
        watcher.check()
        poller = LivePoller(holder, live_poll_seconds) if write_log is not None else None
        loop.run(server.start())
        watcher.start()
        if poller is not None:
            poller.start()
    except BaseException:
        if endpoint is not None:
            endpoint.stop()
        if server is not None:
            loop.run(server.stop(None))
        loop.stop()
        pool.shutdown()
        write_pool.shutdown()
        holder.close()
        if write_log is not None:
            write_log.close()
        raise
    running = RunningServer(server, loop, pool, host, port, holder, health_servicer, watcher, poller, write_log,
                            write_pool, metrics, endpoint)
    log.info("listening on %s:%d (%s), serving bundle %s; writes %s, reads %s", host, port,
             "TLS" if credentials is not None else "plaintext", holder.version or "none yet",
             "need the write token" if auth.accepts_writes and write_log is not None else "refused",
             "need a token" if auth.read is not None else "open")
    if endpoint is not None:
        log.info("metrics on %s", endpoint.url)
    return running


def _served_state(holder: BundleHolder, write_log) -> dict:
    """What the metrics read of the bundle served (``ServerMetrics.watch``)."""
    rec = holder.bundle
    if rec is None:
        return {}
    live = getattr(rec, "live", None)
    return {"version": rec.version, "created_at": rec.bundle.manifest.get("created_at"), "live_seq": rec.live_seq,
            "log_seq": write_log.last_seq() if write_log is not None and live is not None else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pmrs-server", description="PMRS gRPC recommender server")
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file ([server] table); flags override it")
    p.add_argument("--bind", help="HOST:PORT to listen on (default 127.0.0.1:50051; port 0: any free port)")
    p.add_argument("--workers", type=int, help="threads running Recommend and SimilarSongs (default 2)")
    p.add_argument("--compute-slots", type=int,
                   help="Recommend/SimilarSongs calls computing at once (default 1; 0: no limit)")
    p.add_argument("--max-message-mb", type=int,
                   help="largest request or response in MiB (default 20: a 16 MiB AddSong clip fits)")
    p.add_argument("--default-acoustic-share", type=float, help="acoustic share when a request leaves it unset")
    p.add_argument("--default-diversity", type=float, help="MMR diversity when a Recommend request leaves it unset")
    p.add_argument("--poll-seconds", type=float, help="how often bundles/CURRENT is checked (default 2)")
    p.add_argument("--grace-seconds", type=float, help="on SIGTERM, time calls in flight get (default 10)")
    p.add_argument("--tls-cert", help="PEM certificate (chain) file: serve TLS (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key file of --tls-cert")
    p.add_argument("--tls-client-ca", help="PEM CA file: require client certificates signed by it (mutual TLS)")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="allow plaintext on an address other than loopback (refused otherwise)")
    p.add_argument("--write-token-file", help=f"file holding the write token (default: ${WRITE_TOKEN_ENV}; "
                   "without one, writes are refused). Never pass a token itself on the command line")
    p.add_argument("--read-token-file", help=f"file holding the read token (default: ${READ_TOKEN_ENV}; "
                   "without one, reads are open)")
    p.add_argument("--no-live", dest="live", action="store_false", default=None,
                   help="serve the bundle alone: no write log, no writes")
    p.add_argument("--live-poll-seconds", type=float,
                   help="how often writes of other processes are looked for (default 0.05)")
    p.add_argument("--metrics-bind", help="HOST:PORT of the Prometheus metrics (default 127.0.0.1:0: loopback, "
                   "any free port, printed at start; '' for none)")
    p.add_argument("--metrics-public", action="store_true", default=None,
                   help="allow the metrics on an address other than loopback")
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON objects")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli("pmrs-server", build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    cfg = cfgmod.build(ServerConfig, "server", cfgmod.load_toml(args.config), vars(args))
    workdir = cfgmod.resolve_workdir(args.workdir)
    try:
        running = serve(workdir, bind=cfg.bind, workers=cfg.workers,
                        default_acoustic_share=cfg.default_acoustic_share,
                        default_diversity=cfg.default_diversity, poll_seconds=cfg.poll_seconds,
                        max_message_mb=cfg.max_message_mb, blas_threads=cfg.blas_threads,
                        compute_slots=cfg.compute_slots, tls_cert=cfg.tls_cert, tls_key=cfg.tls_key,
                        insecure=cfg.insecure,
                        auth=Auth.from_config(cfg.write_token_file, cfg.read_token_file),
                        live=cfg.live, live_poll_seconds=cfg.live_poll_seconds,
                        tls_client_ca=cfg.tls_client_ca, metrics_bind=cfg.metrics_bind,
                        metrics_public=cfg.metrics_public)
    except OSError as exc:  # a busy port, an address this machine lacks: the settings' to fix
        raise ValueError(str(exc)) from None
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
    if running.metrics_url:
        print(f"pmrs-server metrics on {running.metrics_url}", flush=True)
    while not stop.wait(1.0):
        pass
    running.stop(cfg.grace_seconds)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
