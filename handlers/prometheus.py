"""`EKKO_METRICS_PORT`: the figures of `ekko.metrics` in Prometheus text format over HTTP.

prometheus_client serves the endpoint from its own thread. At each scrape the collector
asks the event loop for the same MetricsReport `ekko.metrics` returns, so both always agree
and a request pays nothing for the endpoint (no second set of counters to update).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from service.config import ConfigError
from service.usecases.metrics import Figures, MetricsReport, MetricsService

log = logging.getLogger(__name__)
SCRAPE_TIMEOUT = 5.0  # seconds a scrape waits for the event loop
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))


def _quantiles(family: GaugeMetricFamily, labels: list[str], figures: Figures, scale: float = 1.0) -> None:
    for quantile, name in QUANTILES:
        family.add_metric([*labels, quantile], getattr(figures, name) * scale)


def families(report: MetricsReport) -> Iterator[Metric]:
    """The report as Prometheus metric families (latencies in seconds, as Prometheus prefers)."""
    ms = 0.001
    info = report.instance
    up = GaugeMetricFamily("ekko_info", "this ekko process", labels=["version", "deployment", "host"])
    up.add_metric([info.version, info.deployment, info.host], 1)
    yield up
    yield GaugeMetricFamily("ekko_uptime_seconds", "seconds since the process started", value=info.uptime_seconds)

    requests = CounterMetricFamily("ekko_requests", "requests answered, per subject", labels=["subject"])
    errors = CounterMetricFamily("ekko_request_errors", "error replies, per subject", labels=["subject"])
    spent = CounterMetricFamily("ekko_request_seconds", "time spent answering, per subject", labels=["subject"])
    latency = GaugeMetricFamily(
        "ekko_request_latency_seconds", "latency over the latest 1024 requests", labels=["subject", "quantile"]
    )
    for subject, s in report.requests.items():
        requests.add_metric([subject], s.requests)
        errors.add_metric([subject], s.errors)
        spent.add_metric([subject], s.latency_ms.sum * ms)
        _quantiles(latency, [subject], s.latency_ms, ms)
    yield from (requests, errors, spent, latency)

    pool = report.pool
    yield GaugeMetricFamily("ekko_pool_size", "DuckDB read cursors", value=pool.size)
    yield GaugeMetricFamily("ekko_pool_in_use", "read cursors busy now", value=pool.in_use)
    yield GaugeMetricFamily("ekko_pool_waiting", "reads waiting for a cursor now", value=pool.waiting)
    yield CounterMetricFamily("ekko_pool_waits", "reads that had to wait for a cursor", value=pool.waits)
    yield CounterMetricFamily("ekko_pool_wait_seconds", "time reads spent waiting", value=pool.wait_seconds)

    writer = report.writer
    yield GaugeMetricFamily("ekko_writer_queue_length", "writes waiting for the writer", value=writer.queue_length)
    yield CounterMetricFamily("ekko_writer_groups", "group transactions committed", value=writer.group_size.count)
    yield CounterMetricFamily("ekko_writer_writes", "writes run in group transactions", value=writer.group_size.sum)
    group = GaugeMetricFamily("ekko_writer_group_size", "writes per group transaction", labels=["quantile"])
    _quantiles(group, [], writer.group_size)
    yield group

    count = CounterMetricFamily("ekko_queries", "repository queries", labels=["entity", "operation"])
    total = CounterMetricFamily("ekko_query_seconds", "time in repository queries", labels=["entity", "operation"])
    quantiles = GaugeMetricFamily(
        "ekko_query_latency_seconds", "query time over the latest 1024", labels=["entity", "operation", "quantile"]
    )
    for key, figures in report.queries_ms.items():
        labels = key.split(".", 1)
        count.add_metric(labels, figures.count)
        total.add_metric(labels, figures.sum * ms)
        _quantiles(quantiles, labels, figures, ms)
    yield from (count, total, quantiles)

    relay = report.relay
    yield CounterMetricFamily("ekko_relay_published", "outbox changes published", value=relay.published)
    yield CounterMetricFamily("ekko_relay_failed_attempts", "failed publish attempts", value=relay.failed_attempts)
    yield GaugeMetricFamily("ekko_relay_pending", "changes in the outbox not yet published", value=relay.pending)
    age = relay.oldest_pending_age_seconds or 0.0
    yield GaugeMetricFamily("ekko_relay_oldest_pending_age_seconds", "age of the oldest pending change", value=age)
    if relay.lag_seconds is not None:
        yield GaugeMetricFamily("ekko_relay_lag_seconds", "commit to ack of the last change", value=relay.lag_seconds)
    yield CounterMetricFamily("ekko_relay_repairs", "KV repairs run", value=relay.repairs)
    yield GaugeMetricFamily(
        "ekko_relay_dead_letters",
        "changes the relay can never publish (ekko sync repair clears them)",
        value=relay.dead_letters,
    )

    cache = report.cache
    yield CounterMetricFamily("ekko_cache_hits", "gets answered from memory", value=cache.hits)
    yield CounterMetricFamily("ekko_cache_misses", "gets that read DuckDB", value=cache.misses)
    yield GaugeMetricFamily("ekko_cache_entries", "records held in memory", value=cache.entries)

    integrity = report.integrity
    if integrity.ok is not None:
        yield GaugeMetricFamily("ekko_integrity_ok", "1 when the latest integrity check passed", value=integrity.ok)
        yield GaugeMetricFamily(
            "ekko_integrity_checked_timestamp_seconds",
            "when the latest integrity check ran",
            value=integrity.checked_at.timestamp(),
        )


class ReportCollector(Collector):
    def __init__(self, metrics: MetricsService, loop: asyncio.AbstractEventLoop) -> None:
        self.metrics = metrics
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        """Runs on the HTTP server's thread: the report is made on the event loop."""
        report = asyncio.run_coroutine_threadsafe(self.metrics.report(), self.loop).result(SCRAPE_TIMEOUT)
        yield from families(report)


class MetricsEndpoint:
    """The HTTP endpoint, started and stopped with the service."""

    def __init__(self, metrics: MetricsService, port: int) -> None:
        self.metrics = metrics
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ReportCollector(self.metrics, asyncio.get_running_loop()))
        try:
            self._server, self._thread = start_http_server(self.port, registry=registry)
        except OSError as exc:
            raise ConfigError(f"EKKO_METRICS_PORT={self.port}: cannot serve metrics there ({exc})") from exc
        self.port = self._server.server_port  # the real one when asked for port 0
        log.info("Prometheus metrics on http://0.0.0.0:%d/metrics", self.port, extra={"metrics_port": self.port})

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
