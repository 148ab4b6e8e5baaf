"""Who may talk to the page, and who may write through it.

``pmrs-web`` writes (plays, uploads) with its own token, so a request that reaches it with a
browser's cookies or from another site must not be able to write. Two checks, in one ASGI
middleware (:class:`SameOriginGuard`), before any route runs:

- **Host**: every request names an allowed host in its ``Host`` header (loopback names, the bind
  address and ``allowed_hosts``); any other answers 400. A page reached under a name an attacker
  controls (DNS rebinding) is refused before it can read or write.
- **Same origin for writes**: a state-changing request (POST, PUT, PATCH, DELETE) carries proof a
  browser enforces: ``Sec-Fetch-Site`` (Fetch Metadata) must be ``same-origin`` when present, and
  ``Origin`` must be this page's own origin (scheme and the requested host and port) when
  present; ``Origin: null`` (sandboxed frames, some redirects) is refused, and so is a write
  with neither header. Browsers send one or both on every cross-site or same-site POST, form or
  ``fetch``, ``text/plain`` and multipart alike, and a page cannot forge them. Refusals answer
  403 with the reason.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Host names every page answers to (it listens on loopback by default).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def split_host(value: str) -> tuple[str, str]:
    """``(host, port)`` of a ``Host`` header or netloc (``"[::1]:8080"`` -> ``("::1", "8080")``);
    the host lower-cased, ``""`` for the parts missing."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host.lower(), rest[1:] if rest.startswith(":") else ""
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host.lower(), port


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a page bound to ``bind_host`` answers to: loopback names, the bind host
    itself unless it is a wildcard (``0.0.0.0``, ``::``), and ``extra`` (names the operator
    gives: ``[web] allowed_hosts`` or ``--allowed-host``)."""
    hosts = {h.lower() for h in LOOPBACK_HOSTS}
    bind_host = bind_host.strip("[]").lower()
    try:
        wildcard = ipaddress.ip_address(bind_host).is_unspecified
    except ValueError:
        wildcard = False
    if bind_host and not wildcard:
        hosts.add(bind_host)
    hosts.update(split_host(h)[0] or h.strip().lower() for h in extra if h.strip())
    return frozenset(hosts)


class SameOriginGuard:
    """ASGI middleware: the Host check for every HTTP request, the same-origin check for writes
    (module docstring)."""

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host_header = headers.get("host", "")
        host, _ = split_host(host_header)
        if host not in self.hosts:
            return await _refuse(400, f"host {host_header!r} is not one this page answers to "
                                      "(start pmrs-web with --allowed-host NAME to add it)", scope, receive, send)
        if scope["method"] in UNSAFE_METHODS:
            why = self._cross_site(headers, scope.get("scheme", "http"), host_header)
            if why:
                return await _refuse(403, f"refused: {why}; writes are taken only from this page itself",
                                     scope, receive, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def _cross_site(headers: dict, scheme: str, host_header: str) -> str | None:
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if site is not None and site != "same-origin":
            return f"the request came from a {site} context (Sec-Fetch-Site)"
        if origin is not None:
            if origin == "null":
                return "the request came from an opaque origin (Origin: null)"
            o = urlsplit(origin)
            if o.scheme != scheme or split_host(o.netloc) != split_host(host_header):
                return f"the request came from another origin ({origin})"
        if site is None and origin is None:
            return "the request carries no Origin or Sec-Fetch-Site header"
        return None


async def _refuse(status: int, message: str, scope, receive, send) -> None:
    await PlainTextResponse(message, status_code=status)(scope, receive, send)
