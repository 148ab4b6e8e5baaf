"""pmrs-web measures itself: every request counted by route and status, timed, and the page's
writes and refused writes counted (:class:`pmrs.telemetry.WebMetrics`)."""

from __future__ import annotations

import time

from pmrs.telemetry import WebMetrics

#: Routes that write, by path: what the metrics call the write.
WRITES = {"/api/play": "play", "/upload": "upload"}


class Measured:
    """ASGI middleware (outermost, so refusals of the guard are counted too)."""

    def __init__(self, app, metrics: WebMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")   # (unset for a request refused before routing: by its path)
            path = (getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else
                                                     scope["path"] if scope["path"] in WRITES else "other"))
            self.metrics.ended(path, scope["method"], status[0], time.perf_counter() - t0,
                               WRITES.get(scope["path"]))
