"""What a running PMRS process says about itself: Prometheus metrics and structured logs.

``pmrs-server`` and ``pmrs-web`` each keep their metrics in a registry of their own
(``prometheus_client``) and expose it on a separate HTTP port (``--metrics-bind``, loopback by
default: :func:`serve_metrics`), in the text format Prometheus scrapes. Logs are lines of text, or
one JSON object per line with ``--log-format json`` (or ``$PMRS_LOG_FORMAT=json``):
:func:`json_formatter`.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Callable

from prometheus_client import CollectorRegistry, start_http_server
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
