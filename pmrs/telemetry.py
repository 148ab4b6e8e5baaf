"""What a running PMRS process says about itself: Prometheus metrics and structured logs.

``pmrs-server`` and ``pmrs-web`` each keep their metrics in a registry of their own
(``prometheus_client``) and expose it on a separate HTTP port (``--metrics-bind``, loopback by
default: :func:`serve_metrics`), in the text format Prometheus scrapes. Logs are lines of text, or
one JSON object per line with ``--log-format json`` (or ``$PMRS_LOG_FORMAT=json``):
:func:`json_formatter`.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import logging
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: Environment variable choosing the log format of every PMRS command ("text" or "json").
LOG_FORMAT_ENV = "PMRS_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
#: Latency buckets (seconds): a lookup in the default lists takes well under a millisecond, a
#: computed answer a few milliseconds, an AddSong with a clip up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Gauges(Collector):
    """Gauges read at scrape time from ``read()``: ``{name: (help, value or {labels tuple: value},
    label names)}``; a failing ``read`` yields nothing (a scrape never fails for it)."""

    def __init__(self, read: Callable[[], dict]):
        self.read = read

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            values = self.read()
        except Exception:   # (a bundle being swapped: the next scrape has it)
            logging.getLogger(__name__).debug("gauges not read", exc_info=True)
            return
        for name, (doc, value, labels) in values.items():
            g = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
            if labels:
                for key, v in value.items():
                    g.add_metric(list(key), v)
            elif value is None:
                continue
            else:
                g.add_metric([], value)
            yield g

    def describe(self):
        return []


def check_metrics_bind(bind: str, allow_public: bool = False) -> tuple[str, int]:
    """``(host, port)`` of a ``HOST:PORT`` metrics address; ``ValueError`` for a malformed one, or
    one off loopback without ``allow_public`` (metrics name users' bundle and traffic)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"metrics address must be HOST:PORT, got {bind!r}")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_public:
        raise ValueError(f"metrics on {bind} would be visible off this machine; bind them to loopback "
                         "(the default) or pass --metrics-public")
    return host, int(port)


class MetricsEndpoint:
    """The HTTP endpoint serving ``registry`` (``stop()`` closes it); ``address`` is host:port."""

    def __init__(self, registry: CollectorRegistry, bind: str, allow_public: bool = False):
        host, port = check_metrics_bind(bind, allow_public)
        self.server, self.thread = start_http_server(port, addr=host, registry=registry)
        bound = self.server.server_address
        self.address = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(registry: CollectorRegistry, bind: str, allow_public: bool = False) -> MetricsEndpoint:
    """Expose ``registry`` at ``http://<bind>/metrics`` from a daemon thread."""
    return MetricsEndpoint(registry, bind, allow_public)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape's samples as ``{(name, sorted label pairs): value}`` (the web page's lab and the
    tests read them so)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def json_formatter() -> logging.Formatter:
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message`` and any extras."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


# -- pmrs-server's metrics ----------------------------------------------------------------------

#: The Recommender methods whose answers can come from the default lists.
ANSWERING = frozenset({"Recommend", "SimilarSongs"})
WRITE_KINDS = {"RecordPlays": "plays", "RecordFeedback": "feedback", "AddSong": "song"}


class ServerMetrics:
    """``pmrs-server``'s metrics in a registry of their own (``registry``). Per call (recorded by
    the server's transport, which sees every call: refused by a token, malformed, failed or
    answered):

    - ``pmrs_calls_total{method, code}``: calls ended, by gRPC status code name (``OK`` included);
    - ``pmrs_call_seconds{method}``: latency histogram, from the call's headers to its answer;
    - ``pmrs_calls_in_flight``: calls being handled now;
    - ``pmrs_answers_total{method, answer}``: Recommend and SimilarSongs answers by how they were
      made: ``precomputed`` (a lookup in the bundle's default lists) or ``computed``;
    - ``pmrs_live_writes_total{kind}`` and ``pmrs_writes_refused_total{kind, reason}``: writes
      taken (``plays``, ``song``) and refused, the reason being the status code (a missing token
      is ``UNAUTHENTICATED``, a bad id ``INVALID_ARGUMENT``, a full disk ``UNAVAILABLE``);
    - ``pmrs_compute_queue_depth``: calls waiting for a compute slot.

    Read at scrape time (:meth:`watch`): ``pmrs_bundle_info{version}`` (1 for the bundle served),
    ``pmrs_bundle_age_seconds`` (since it was built), ``pmrs_bundle_loaded`` (0 while none is),
    ``pmrs_live_sequence`` (the last write applied) and ``pmrs_write_log_lag`` (writes in the log
    this server has not applied yet: how far this replica trails the others).
    """

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


# -- pmrs-web's metrics -------------------------------------------------------------------------


class WebMetrics:
    """``pmrs-web``'s metrics in a registry of their own: ``pmrs_web_requests_total{route,
    status}``, ``pmrs_web_request_seconds{route}`` (latency histogram),
    ``pmrs_web_writes_total{kind}`` (``play``, ``upload``) and ``pmrs_web_writes_refused_total{kind,
    status}`` (a cross-site write refused is status 403, an unknown host 400, an oversized upload
    413). ``route``: the route's path template (``/songs/{song_id}``), ``other`` when none matched."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("pmrs_web_requests", "Page requests by route and HTTP status",
                                ["route", "status"], registry=r)
        self.seconds = Histogram("pmrs_web_request_seconds", "Page request latency (s)", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.writes = Counter("pmrs_web_writes", "Writes made through the page, by kind", ["kind"], registry=r)
        self.refused = Counter("pmrs_web_writes_refused", "Writes refused by the page, by kind and HTTP status",
                               ["kind", "status"], registry=r)

    def ended(self, route: str, method: str, status: int, seconds: float, write: str | None) -> None:
        """Record a request; ``write``: the kind of write it was (``None``: a read)."""
        self.requests.labels(route, str(status)).inc()
        self.seconds.labels(route).observe(seconds)
        if write is not None and method == "POST":
            if status < 400:
                self.writes.labels(write).inc()
            else:
                self.refused.labels(write, str(status)).inc()


# -- reading a scrape back: the figures the web page's lab shows --------------------------------


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram from its cumulative ``(upper bound, count)`` buckets
    (``+Inf`` last), interpolated linearly within a bucket as Prometheus's ``histogram_quantile``
    does; ``None`` without observations."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank = q * total
    lo_bound, lo_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lo_bound
            width = count - lo_count
            return lo_bound + (bound - lo_bound) * ((rank - lo_count) / width if width else 1.0)
        lo_bound, lo_count = bound, count
    return lo_bound


def figures(text: str, prefix: str = "pmrs_") -> dict:
    """A scrape of pmrs-server (``prefix`` ``pmrs_``) or pmrs-web (``pmrs_web_``) summarised:
    ``{"calls": [{"name", "ok", "errors": {code: n}, "p50_ms", "p99_ms"}], "counters": {name:
    {labels: value}}, "gauges": {name: value}}``: what the lab renders."""
    per: dict[str, dict] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    counters: dict[str, dict[str, float]] = {}
    gauges: dict[str, float] = {}
    is_web = prefix == "pmrs_web_"
    calls, seconds = ("pmrs_web_requests_total", "pmrs_web_request_seconds") if is_web \
        else ("pmrs_calls_total", "pmrs_call_seconds")
    key = "route" if is_web else "method"
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix) or (not is_web and family.name.startswith("pmrs_web_")):
            continue
        for s in family.samples:
            labels = dict(s.labels)
            if s.name == calls:
                row = per.setdefault(labels[key], {"name": labels[key], "ok": 0.0, "errors": {}})
                code = labels.get("status" if is_web else "code", "")
                ok = code == "OK" or (code.isdigit() and int(code) < 400)
                if ok:
                    row["ok"] += s.value
                else:
                    row["errors"][code] = row["errors"].get(code, 0.0) + s.value
            elif s.name == f"{seconds}_bucket":
                buckets.setdefault(labels[key], []).append((float(labels["le"]), s.value))
            elif s.name.endswith("_total"):
                counters.setdefault(s.name, {})[",".join(f"{v}" for _, v in sorted(labels.items()))] = s.value
            elif family.type == "gauge" and not labels:
                gauges[s.name] = s.value
            elif family.type == "gauge":
                gauges[f"{s.name}{{{','.join(f'{k}={v}' for k, v in sorted(labels.items()))}}}"] = s.value
    for name, row in per.items():
        for q, field in ((0.5, "p50_ms"), (0.99, "p99_ms")):
            v = histogram_quantile(q, buckets.get(name, []))
            row[field] = None if v is None else round(1000 * v, 2)
    return {"calls": sorted(per.values(), key=lambda r: r["name"]), "counters": counters, "gauges": gauges}
