"""``pmrs-server``'s Prometheus metrics (exposed by :mod:`pmrs.telemetry` on ``--metrics-bind``).

Per call (recorded by the transport's handler, which sees every call: refused by a token,
malformed, failed or answered):

- ``pmrs_calls_total{method, code}``: calls ended, by gRPC status code name (``OK`` included);
- ``pmrs_call_seconds{method}``: latency histogram, from the call's headers to its answer;
- ``pmrs_calls_in_flight``: calls being handled now;
- ``pmrs_answers_total{method, answer}``: Recommend and SimilarSongs answers by how they were
  made: ``precomputed`` (a lookup in the bundle's default lists) or ``computed``;
- ``pmrs_live_writes_total{kind}`` and ``pmrs_writes_refused_total{kind, reason}``: writes taken
  (``plays``, ``song``) and refused, the reason being the status code (a missing token is
  ``UNAUTHENTICATED``, a bad id ``INVALID_ARGUMENT``, a full disk ``UNAVAILABLE``);
- ``pmrs_compute_queue_depth``: calls waiting for a compute slot.

Read at scrape time (:class:`pmrs.telemetry.Gauges`): ``pmrs_bundle_info{version}`` (1 for the
bundle served), ``pmrs_bundle_age_seconds`` (since it was built), ``pmrs_bundle_loaded`` (0 while
none is), ``pmrs_live_sequence`` (the last write applied) and ``pmrs_write_log_lag`` (writes in
the log this server has not applied yet: how far this replica trails the others).
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pmrs.telemetry import LATENCY_BUCKETS, Gauges

#: The Recommender methods whose answers can come from the default lists.
ANSWERING = frozenset({"Recommend", "SimilarSongs"})
WRITE_KINDS = {"RecordPlays": "plays", "AddSong": "song"}


class ServerMetrics:
    """The server's metrics in a registry of their own (``registry``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("pmrs_calls", "gRPC calls ended, by method and status code",
                             ["method", "code"], registry=r)
        self.seconds = Histogram("pmrs_call_seconds", "gRPC call latency, from headers to answer (s)",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("pmrs_calls_in_flight", "gRPC calls being handled", registry=r)
        self.answers = Counter("pmrs_answers", "Recommend and SimilarSongs answers by how they were made "
                               "(precomputed: the default lists; computed)", ["method", "answer"], registry=r)
        self.writes = Counter("pmrs_live_writes", "Live writes taken, by kind", ["kind"], registry=r)
        self.refused = Counter("pmrs_writes_refused", "Live writes refused, by kind and status code",
                               ["kind", "reason"], registry=r)
        self.queue = Gauge("pmrs_compute_queue_depth", "Calls waiting for a compute slot", registry=r)

    def watch(self, state: Callable[[], dict]) -> None:
        """Gauges read from ``state()`` at each scrape: ``{"version", "created_at" (ISO 8601),
        "live_seq", "log_seq"}`` of the served bundle, or ``{}`` while none is loaded."""
        def read() -> dict:
            s = state()
            out = {"pmrs_bundle_loaded": ("Whether a bundle is served (0: answering UNAVAILABLE)",
                                          1.0 if s else 0.0, ())}
            if not s:
                return out
            out["pmrs_bundle_info"] = ("The bundle served (its version as a label)",
                                       {(s["version"],): 1.0}, ("version",))
            age = _age_seconds(s.get("created_at"))
            if age is not None:
                out["pmrs_bundle_age_seconds"] = ("Seconds since the served bundle was built", age, ())
            if s.get("live_seq") is not None:
                out["pmrs_live_sequence"] = ("The last write-log entry this server applied",
                                             float(s["live_seq"]), ())
            if s.get("log_seq") is not None and s.get("live_seq") is not None:
                out["pmrs_write_log_lag"] = ("Write-log entries not applied here yet (replica lag)",
                                             float(max(0, s["log_seq"] - s["live_seq"])), ())
            return out

        self.registry.register(Gauges(read))

    def ended(self, method: str, code: str, seconds: float, precomputed: bool | None) -> None:
        """Record a call that ended with status ``code`` (``"OK"``...) after ``seconds``;
        ``precomputed``: how an answer was made (``None``: not an answering call or no answer)."""
        self.calls.labels(method, code).inc()
        self.seconds.labels(method).observe(seconds)
        if method in ANSWERING and precomputed is not None:
            self.answers.labels(method, "precomputed" if precomputed else "computed").inc()
        kind = WRITE_KINDS.get(method)
        if kind is not None:
            if code == "OK":
                self.writes.labels(kind).inc()
            else:
                self.refused.labels(kind, code).inc()


def _age_seconds(created_at: str | None) -> float | None:
    if not created_at:
        return None
    try:
        t = _dt.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, time.time() - t.timestamp())
