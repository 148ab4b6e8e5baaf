"""``pmrs-web``: the interactive web page over a running ``pmrs-server``.

``pmrs-web [--bind HOST:PORT] [--target HOST:PORT] [--workdir DIR] [--config FILE]``; settings in
``[web]`` of a TOML file (:class:`pmrs.web.app.WebConfig`), flags override. The write token (for
"played it" and uploads) comes from ``--token-file`` / ``token_file``, else ``$PMRS_WRITE_TOKEN``,
else ``$PMRS_TOKEN``: never from the page, never from a flag's value. Prints
``pmrs-web listening on http://HOST:PORT`` once it accepts connections; SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from pmrs import config as cfgmod
from pmrs.entry import run_cli
from pmrs.telemetry import serve_metrics

from .app import WebConfig, create_app

log = logging.getLogger("pmrs.web")
TOKEN_ENVS = ("PMRS_WRITE_TOKEN", "PMRS_TOKEN")
#: On SIGTERM or Ctrl-C: requests in flight get this long to finish before the process exits.
GRACE_SECONDS = 5


def web_token(token_file: str | None) -> str | None:
    """The write token from ``token_file``, else the first of :data:`TOKEN_ENVS` set; None."""
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"token file {token_file} is empty")
        return token
    return next((v.strip() for e in TOKEN_ENVS if (v := os.environ.get(e, "")).strip()), None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pmrs-web", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file ([web] table); flags override it")
    p.add_argument("--bind", help="HOST:PORT to listen on (default 127.0.0.1:8080; port 0: any free port)")
    p.add_argument("--target", help="pmrs-server's HOST:PORT (default 127.0.0.1:50051)")
    p.add_argument("--timeout-s", type=float, help="deadline of each call to pmrs-server (default 5)")
    p.add_argument("--token-file", help="file holding the write token (default: $PMRS_WRITE_TOKEN, else $PMRS_TOKEN)")
    p.add_argument("--tls", action="store_true", default=None, help="talk TLS to pmrs-server")
    p.add_argument("--ca-file", help="PEM CA file: talk TLS to pmrs-server, trusting it")
    p.add_argument("--cert-file", help="PEM client certificate, for a server that requires one (mutual TLS)")
    p.add_argument("--key-file", help="the client certificate's PEM key")
    p.add_argument("--allowed-host", dest="allowed_hosts", action="append",
                   help="a host name the page answers to besides loopback and the bind address (repeatable; "
                        "requests naming any other host are refused)")
    p.add_argument("--https-cert", help="PEM certificate (chain): serve the page over HTTPS (with --https-key)")
    p.add_argument("--https-key", help="the PEM private key of --https-cert")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="allow plain HTTP on an address other than loopback (refused otherwise)")
    p.add_argument("--metrics-bind", help="HOST:PORT of the page's Prometheus metrics (default 127.0.0.1:0: "
                   "loopback, any free port, printed at start; '' for none)")
    p.add_argument("--metrics-public", action="store_true", default=None,
                   help="allow the metrics on an address other than loopback")
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON objects")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def check_bind(bind: str, https: bool, insecure: bool) -> str:
    """The bind address's host; ``ValueError`` for plain HTTP off loopback without ``insecure``
    (the page writes with its own token: anyone who reaches it can write), as pmrs-server refuses
    plaintext there."""
    import ipaddress

    host = bind.rpartition(":")[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not https and not insecure:
        raise ValueError(f"pmrs-web on {bind} would serve plain HTTP off this machine; serve HTTPS "
                         "(--https-cert, --https-key) or pass --insecure")
    return host


def listen(bind: str) -> socket.socket:
    """A listening socket on ``HOST:PORT`` (port 0: any free port) whose connections send at once
    (``TCP_NODELAY``, inherited by accepted sockets on Linux): uvicorn writes a response's head
    and body apart, and with Nagle's algorithm the body waits for the client's delayed ACK, 40 ms
    a request (23 requests a second from one client instead of about a thousand)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(128)
    return sock


def serve_app(app, sock, name: str, https_cert: str | None, https_key: str | None, quiet: bool,
              more: list[str] = ()) -> None:
    """Serve ``app`` with uvicorn on the listening ``sock`` until SIGTERM or Ctrl-C; prints
    ``<name> listening on <url>`` (and the ``more`` lines) once it takes connections."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    url = f"{'https' if https_cert else 'http'}://{host if ':' not in host else f'[{host}]'}:{port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            print(f"{name} listening on {url}", flush=True)
            for line in more:
                print(line, flush=True)

    server = Server(uvicorn.Config(app, log_level="warning" if quiet else "info", access_log=False,
                                   timeout_graceful_shutdown=GRACE_SECONDS, log_config=None,
                                   ssl_certfile=https_cert, ssl_keyfile=https_key))
    # uvicorn re-raises the signal that stopped it once it has shut down; these handlers take it,
    # so SIGTERM and Ctrl-C end the command with 0 like pmrs-server
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: log.info("stopped by %s", signal.Signals(signum).name))
    server.run(sockets=[sock])


def _run(args: argparse.Namespace) -> int:

    cfg = cfgmod.build(WebConfig, "web", cfgmod.load_toml(args.config), vars(args))
    if bool(cfg.https_cert) != bool(cfg.https_key):
        raise ValueError("--https-cert and --https-key go together")
    bind_host = check_bind(cfg.bind, bool(cfg.https_cert), cfg.insecure)
    workdir = cfgmod.resolve_workdir(args.workdir)
    token = web_token(cfg.token_file)
    app = create_app(workdir, cfg.target, token=token, timeout_s=cfg.timeout_s, retries=cfg.retries,
                     tls=cfg.tls, ca_file=cfg.ca_file, cert_file=cfg.cert_file, key_file=cfg.key_file,
                     upload_timeout_s=cfg.upload_timeout_s, bind_host=bind_host, hosts=cfg.allowed_hosts)
    sock = listen(cfg.bind)
    log.info("pmrs-web for %s over %s (writes: %s)", cfg.target, workdir, "on" if token else "off, no token")
    endpoint = (serve_metrics(app.state.web.metrics.registry, cfg.metrics_bind, cfg.metrics_public)
                if cfg.metrics_bind else None)
    try:
        serve_app(app, sock, "pmrs-web", cfg.https_cert, cfg.https_key, args.quiet,
                  [f"pmrs-web metrics on {endpoint.url}"] if endpoint is not None else [])
    finally:
        if endpoint is not None:
            endpoint.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("pmrs-web", build_parser(), _run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
