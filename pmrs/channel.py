"""Channels to ``pmrs-server``: targets (one server, or replicas balanced round robin), retries
of ``UNAVAILABLE`` with exponential backoff, TLS credentials and the bearer token's metadata.

The remote recommender (:func:`pmrs.connect`) and the load test (``pmrs-loadtest``) open their
channels here.

Retries
-------
Calls that end in ``UNAVAILABLE`` (server not reachable, or no bundle loaded yet) are retried by
gRPC itself, with exponential backoff, through a retry policy in the channel's service config
(channel option ``grpc.service_config``): up to ``retries`` further attempts, the n-th after a
random delay in ``[0, backoff_s * 2**(n-1)]`` capped at ``max_backoff_s`` (gRPC's jittered
backoff). gRPC allows at most 5 attempts per call, so ``retries`` is 0 to 4. No other status code
is retried: they are answers, not transient failures. A call's deadline covers its retries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from .errors import InvalidArgument

__all__ = ["MAX_RETRIES", "SERVICE_NAME", "TOKEN_ENV", "auth_metadata", "channel_credentials", "channel_target",
           "make_channel", "service_config"]

TOKEN_ENV = "PMRS_TOKEN"
"""The environment variable a client takes its bearer token from when none is given."""

SERVICE_NAME = "pmrs.v1.Recommender"
"""Fully qualified gRPC service name (what the retry policy applies to)."""

MAX_RETRIES = 4
"""gRPC caps a call at 5 attempts, hence at most 4 retries."""


def service_config(retries: int, backoff_s: float = 0.1, max_backoff_s: float = 2.0) -> str:
    """The JSON service config that retries ``UNAVAILABLE`` calls with exponential backoff.

    Parameters
    ----------
    retries : int
        Further attempts after the first, 0 to :data:`MAX_RETRIES`. 0 gives a config without a
        retry policy.
    backoff_s : float
        Upper bound of the (jittered) delay before the first retry, in seconds; doubles each retry.
    max_backoff_s : float
        Cap of the delay bound, in seconds.

    Returns
    -------
    str
        JSON for the ``grpc.service_config`` channel option.
    """
    if not 0 <= retries <= MAX_RETRIES:
        raise InvalidArgument(f"retries must be 0 to {MAX_RETRIES} (gRPC allows at most 5 attempts "
                              f"per call), got {retries}")
    if backoff_s <= 0 or max_backoff_s < backoff_s:
        raise InvalidArgument(f"need 0 < backoff_s <= max_backoff_s, got {backoff_s}, {max_backoff_s}")
    method: dict[str, Any] = {"name": [{"service": SERVICE_NAME}]}
    if retries:
        method["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": f"{backoff_s:.6f}s",
            "maxBackoff": f"{max_backoff_s:.6f}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method]})


#: gRPC's name-resolver schemes (https://grpc.github.io/grpc/core/md_doc_naming.html).
TARGET_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock")


def channel_target(target: str | Sequence[str]) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for one server or several replicas.

    ``target``: ``HOST:PORT``; or several replicas, as a list or comma-separated
    (``127.0.0.1:50051,127.0.0.1:50052``), each an IP address and port (``localhost`` allowed):
    they become gRPC's ``ipv4:``/``ipv6:`` target with the ``round_robin`` policy, so calls (and
    the connections under them) spread over the replicas and a replica that goes away is skipped.
    A target with a scheme (``dns:///name:port``, ``ipv4:...``) is passed as it is, with
    ``round_robin``: a DNS name that resolves to every replica balances the same way.
    """
    if isinstance(target, str) and target.strip().split(":", 1)[0] in TARGET_SCHEMES:
        # gRPC's own name, which may list several addresses after one scheme
        # (ipv4:127.0.0.1:50051,127.0.0.1:50052): passed as it is, commas and all
        return target.strip(), [("grpc.lb_policy_name", "round_robin")]
    items = [t.strip() for t in ([target] if isinstance(target, str) else list(target)) for t in t.split(",")]
    items = [t for t in items if t]
    if not items:
        raise InvalidArgument("no target given")
    if len(items) == 1:
        return items[0], []
    import ipaddress

    family = set()
    for t in items:
        host, sep, port = t.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        try:
            family.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise InvalidArgument(f"several targets must be IP:PORT (got {t!r}); for host names use one DNS "
                                  "name that resolves to every replica, as dns:///NAME:PORT") from None
        if not sep or not port.isdigit():
            raise InvalidArgument(f"a target is IP:PORT, got {t!r}")
    if len(family) != 1:
        raise InvalidArgument("several targets must all be IPv4 or all IPv6")
    scheme = "ipv4" if family == {4} else "ipv6"
    addresses = ",".join(t.replace("localhost", "127.0.0.1") for t in items)
    return f"{scheme}:{addresses}", [("grpc.lb_policy_name", "round_robin")]


def make_channel(target: str | Sequence[str], *, tls: bool = False, retries: int = 0, backoff_s: float = 0.1,
                 max_backoff_s: float = 2.0,
                 options: Sequence[tuple[str, Any]] = (), ca_file: str | os.PathLike | None = None,
                 cert_file: str | os.PathLike | None = None,
                 key_file: str | os.PathLike | None = None) -> grpc.Channel:
    """Open a channel to a PMRS server.

    Parameters
    ----------
    target : str or sequence of str
        ``HOST:PORT``, or several replicas (:func:`channel_target`: round robin).
    tls : bool
        TLS instead of plaintext (implied by ``ca_file`` or ``cert_file``).
    ca_file : path, optional
        PEM root certificates to trust (a private CA or a self-signed server certificate);
        default: the system's.
    cert_file, key_file : path, optional
        The client's PEM certificate and key, for a server that requires client certificates.
    retries, backoff_s, max_backoff_s
        Retry policy for ``UNAVAILABLE``, see :func:`service_config`. With ``retries=0`` gRPC's
        retries are switched off altogether (what a load test wants: every failure counted).
    options : sequence of (str, value)
        Further channel options.

    Returns
    -------
    grpc.Channel
        The channel (connects lazily, on the first call).
    """
    opts: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(retries, backoff_s, max_backoff_s)),
        ("grpc.enable_retries", 1 if retries else 0),
        *options,
    ]
    target, balance = channel_target(target)
    opts += balance
    creds = channel_credentials(tls, ca_file, cert_file, key_file)
    if creds is not None:
        return grpc.secure_channel(target, creds, options=opts)
    return grpc.insecure_channel(target, options=opts)


def channel_credentials(tls: bool = False, ca_file: str | os.PathLike | None = None,
                        cert_file: str | os.PathLike | None = None,
                        key_file: str | os.PathLike | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials for a channel (sync or ``grpc.aio``), or None for plaintext: TLS when
    ``tls`` or any file is given; ``ca_file`` the roots to trust (default: the system's),
    ``cert_file`` and ``key_file`` (together) the client's certificate for mutual TLS."""
    if (cert_file is None) != (key_file is None):
        raise InvalidArgument("cert_file and key_file go together")
    if not (tls or ca_file is not None or cert_file is not None):
        return None
    read = lambda p: None if p is None else Path(p).read_bytes()  # noqa: E731
    return grpc.ssl_channel_credentials(root_certificates=read(ca_file), private_key=read(key_file),
                                        certificate_chain=read(cert_file))


def auth_metadata(token: str | None = None) -> tuple[tuple[str, str], ...] | None:
    """The call metadata that carries a bearer token (``token``, else ``$PMRS_TOKEN``), or None."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "").strip() or None
    return (("authorization", f"Bearer {token}"),) if token else None
