"""Rate limits of the ListenBrainz-compatible API, announced as ListenBrainz announces its own.

Every answer carries ``X-RateLimit-Limit`` (requests allowed in the window), ``X-RateLimit-Remaining``,
``X-RateLimit-Reset-In`` (seconds until the window ends: what ListenBrainz recommends clients
read, as it does not depend on their clock) and ``X-RateLimit-Reset`` (the same as a UNIX time);
a request past the limit is answered 429 with ListenBrainz's error body and sent nowhere else.
Players and client libraries that speak to ListenBrainz already pace themselves by these
headers (``liblistenbrainz`` does).

Requests are counted in fixed windows of :attr:`RateLimits.window` seconds: a request with a
valid token against its user (whatever token of theirs it carries), any other against the
address it came from, with a lower limit (ListenBrainz also allows more to requests with a valid
token). Addresses are held in memory for their window only, never written anywhere. Behind a
proxy every anonymous request shares the proxy's address, and so its budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per ``window`` seconds with a valid token and without one."""

    window: float = 10.0
    with_token: int = 100
    without_token: int = 30
    #: Users and addresses counted at once; past it the ended windows are dropped first.
    max_keys: int = 100_000

    def __post_init__(self) -> None:
        if not self.window > 0 or self.with_token < 1 or self.without_token < 1 or self.max_keys < 1:
            raise ValueError("rate limits need window > 0 and limits and max_keys of at least 1")


class RateLimiter:
    """ASGI middleware applying :class:`RateLimits` (module docstring). ``user_of(request)``:
    the user of the request's valid token, else ``None``; ``clock``: seconds, monotonic (``None``:
    ``time.monotonic``; a test's own)."""

    def __init__(self, app, limits: RateLimits, user_of: Callable[[Request], str | None],
                 clock: Callable[[], float] | None = None):
        self.app, self.limits, self.user_of, self.clock = app, limits, user_of, clock or time.monotonic
        self._windows: dict[tuple[str, str], list] = {}   # key -> [window end, requests]

    def _key(self, scope) -> tuple[tuple[str, str], int]:
        user = self.user_of(Request(scope))
        if user is not None:
            return ("user", user), self.limits.with_token
        client = scope.get("client")
        return ("address", client[0] if client else ""), self.limits.without_token

    def _count(self, key: tuple[str, str], now: float) -> tuple[int, float]:
        """This request counted: ``(requests in the window so far, its end)``."""
        w = self._windows.get(key)
        if w is None or w[0] <= now:
            if w is None and len(self._windows) >= self.limits.max_keys:
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
                while len(self._windows) >= self.limits.max_keys:   # (all live: the oldest go)
                    self._windows.pop(next(iter(self._windows)))
            w = self._windows[key] = [now + self.limits.window, 0]
        w[1] += 1
        return w[1], w[0]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        key, limit = self._key(scope)
        now = self.clock()
        used, end = self._count(key, now)
        reset_in = max(math.ceil(end - now), 0)
        headers = [(b"x-ratelimit-limit", str(limit).encode()),
                   (b"x-ratelimit-remaining", str(max(limit - used, 0)).encode()),
                   (b"x-ratelimit-reset-in", str(reset_in).encode()),
                   (b"x-ratelimit-reset", str(int(time.time()) + reset_in).encode())]
        if used > limit:
            resp = JSONResponse({"code": 429, "error": f"Too many requests: at most {limit} in "
                                                       f"{self.limits.window:g} s; try again in {reset_in} s."},
                                status_code=429)
            resp.raw_headers.extend(headers)
            return await resp(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *headers])
            await send(message)

        return await self.app(scope, receive, with_headers)
