"""``pmrs-listenbrainz``: the ListenBrainz-compatible API of a work directory, and its tokens.

``pmrs-listenbrainz [--workdir DIR] [--config FILE] serve [--bind HOST:PORT] [--https-cert F
--https-key F] [--insecure]`` (settings in ``[listenbrainz]`` of a TOML file,
:class:`ListenBrainzConfig`; flags override) serves :mod:`pmrs.listenbrainz.app` over a live recommender of the work directory
(it shares the write log with pmrs-server replicas there); it binds 127.0.0.1:8100 by default,
and another address only with HTTPS or ``--insecure`` (tokens travel in every request). Prints
``pmrs-listenbrainz listening on URL`` once it accepts connections.

``pmrs-listenbrainz token create USER`` prints a new token for USER (once: it is stored hashed);
``token list`` lists tokens by id; ``token revoke ID`` revokes one.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass

from pmrs import config as cfgmod
from pmrs.entry import run_cli
from pmrs.listenbrainz.ratelimit import RateLimits

log = logging.getLogger("pmrs.listenbrainz")


@dataclass
class ListenBrainzConfig:
    """``[listenbrainz]`` settings of ``pmrs-listenbrainz serve`` (flags override)."""

    bind: str = "127.0.0.1:8100"
    https_cert: str | None = None   # PEM certificate (chain): serve HTTPS (with https_key)
    https_key: str | None = None
    insecure: bool = False          # allow plain HTTP on an address other than loopback
    rate_window: float = RateLimits.window                 # seconds of a rate-limit window
    rate_limit_token: int = RateLimits.with_token          # requests per window with a valid token
    rate_limit_anonymous: int = RateLimits.without_token   # per window from an address without one


DEFAULT_BIND = ListenBrainzConfig.bind


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pmrs-listenbrainz", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", help="work directory (default: $PMRS_HOME, else ./pmrs-data)")
    p.add_argument("--config", help="TOML config file ([listenbrainz] table); flags override it")
    p.add_argument("--log-format", choices=("text", "json"), help="log lines as text (default) or JSON objects")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the API")
    s.add_argument("--bind", help=f"HOST:PORT to listen on (default {DEFAULT_BIND}; port 0: any free port)")
    s.add_argument("--https-cert", help="PEM certificate (chain): serve HTTPS (with --https-key)")
    s.add_argument("--https-key", help="the PEM private key of --https-cert")
    s.add_argument("--insecure", action="store_true", default=None, help="allow plain HTTP on an address other than loopback")
    t = sub.add_parser("token", help="manage users' tokens")
    tsub = t.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="make a token for a user and print it (shown once)")
    c.add_argument("user", help="the PMRS user id the token's listens are recorded for")
    tsub.add_parser("list", help="list tokens (ids, users, dates; never the tokens)")
    r = tsub.add_parser("revoke", help="revoke a token by its id")
    r.add_argument("token_id")
    return p


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else "-"


def _token(args: argparse.Namespace) -> int:
    from .tokens import TokenStore

    store = TokenStore(cfgmod.resolve_workdir(args.workdir))
    if args.token_command == "create":
        entry, token = store.create(args.user)
        print(f"token {entry.token_id} for user {entry.user_id} (shown once; stored hashed):")
        print(token)
    elif args.token_command == "list":
        for e in store.entries():
            print(f"{e.token_id}\t{e.user_id}\tcreated {_stamp(e.created_at)}\t"
                  f"{'revoked ' + _stamp(e.revoked_at) if e.revoked_at else 'active'}")
    else:
        e = store.revoke(args.token_id)
        print(f"token {e.token_id} of {e.user_id} revoked")
    return 0


def _serve(args: argparse.Namespace) -> int:

    import pmrs
    from pmrs.web.cli import check_bind, listen, serve_app

    from .app import create_app
    from .tokens import TokenStore

    cfg = cfgmod.build(ListenBrainzConfig, "listenbrainz", cfgmod.load_toml(args.config),
                       {k: getattr(args, k, None) for k in ("bind", "https_cert", "https_key", "insecure")})
    if bool(cfg.https_cert) != bool(cfg.https_key):
        raise ValueError("--https-cert and --https-key go together")
    check_bind(cfg.bind, bool(cfg.https_cert), cfg.insecure)
    workdir = cfgmod.resolve_workdir(args.workdir)
    rec = pmrs.Recommender.open(workdir, live=True)
    limits = RateLimits(window=cfg.rate_window, with_token=cfg.rate_limit_token,
                        without_token=cfg.rate_limit_anonymous)
    app = create_app(rec, TokenStore(workdir), workdir, limits)
    threading.Thread(target=app.state.served.recorder.warm_up, name="catalog-index", daemon=True).start()
    try:
        serve_app(app, listen(cfg.bind), "pmrs-listenbrainz", cfg.https_cert, cfg.https_key, args.quiet)
    finally:
        app.state.served.recommender.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    return _token(args) if args.command == "token" else _serve(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli("pmrs-listenbrainz", build_parser(), _run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
