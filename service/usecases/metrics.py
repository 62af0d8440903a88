"""`ekko.metrics`: what the service has done since it started, from counters kept in memory.

`RequestMetrics` is the one count of requests per subject: the request middleware
(handlers/requests.py) records each request once, and everything that reports per-subject
figures (this reply, the Prometheus endpoint, the NATS services `$SRV.STATS`) reads it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from service.model.columns import utc_now
from service.store.database import Database
from service.store.dead_letter import DeadLetterRepository
from service.store.outbox import OutboxRepository
from service.store.timings import QUERY_TIMES, LoopDistribution, Summary
from service.sync.relay import Relay
from service.usecases.cache import RecordCache
from service.usecases.health import Instance, InstanceInfo
from service.usecases.status import IntegrityLog


class SubjectStats:
    """One subject's requests. Updated on the event loop only (no lock needed for the counts)."""

    __slots__ = ("last_error", "latency", "num_errors", "num_requests", "processing_time")

    def __init__(self) -> None:
        self.num_requests = 0
        self.num_errors = 0
        self.last_error = ""  # "<status> <message>" of the latest error reply
        self.processing_time = 0.0  # seconds, summed over all requests
        self.latency = LoopDistribution()


class RequestMetrics:
    """Requests, errors and processing time per subject."""

    def __init__(self) -> None:
        self.subjects: dict[str, SubjectStats] = {}

    def _stats(self, subject: str) -> SubjectStats:
        stats = self.subjects.get(subject)
        if stats is None:
            stats = self.subjects[subject] = SubjectStats()
        return stats

    def refused(self, subject: str, error: str) -> None:
        """A request answered with an error before any handler saw it (handlers.dropped):
        counted, without processing time or a latency sample (a flood of them would pull the
        percentiles down)."""
        stats = self._stats(subject)
        stats.num_requests += 1
        stats.num_errors += 1
        stats.last_error = error

    def record(self, subject: str, seconds: float, error: str | None = None) -> None:
        stats = self._stats(subject)
        stats.num_requests += 1
        stats.processing_time += seconds
        stats.latency.add(seconds)
        if error is not None:
            stats.num_errors += 1
            stats.last_error = error


# -- the reply ------------------------------------------------------------------------
class Figures(msgspec.Struct):
    """count, sum, mean, max and p50/p90/p99 (over the latest 1024 samples) of one quantity."""

    count: int
    sum: float
    mean: float
    max: float
    p50: float
    p90: float
    p99: float


def figures(summary: Summary, scale: float = 1.0) -> Figures:
    """`scale` 1000 turns seconds into milliseconds."""

    def r(value: float) -> float:
        return round(value * scale, 3)

    mean = summary.total / summary.count if summary.count else 0.0
    return Figures(
        summary.count, r(summary.total), r(mean), r(summary.max), r(summary.p50), r(summary.p90), r(summary.p99)
    )


class SubjectMetrics(msgspec.Struct):
    requests: int
    errors: int
    last_error: str
    latency_ms: Figures


class PoolMetrics(msgspec.Struct):
    size: int
    in_use: int
    waiting: int
    waits: int  # reads that found every cursor busy, since start
    wait_seconds: float


class WriterMetrics(msgspec.Struct):
    queue_length: int  # writes waiting for the writer thread now
    group_size: Figures  # writes per group transaction; count = transactions


class RelayMetrics(msgspec.Struct):
    enabled: bool
    published: int
    failed_attempts: int
    pending: int
    oldest_pending_age_seconds: float | None
    lag_seconds: float | None  # commit -> JetStream ack of the last published change
    last_error: str | None
    repairs: int
    dead_letters: int = 0  # entries the relay can never publish, waiting for `ekko sync repair`


class CacheMetrics(msgspec.Struct):
    hits: int
    misses: int
    entries: int


class IntegrityMetrics(msgspec.Struct):
    ok: bool | None  # None: no check ever ran on this database
    checked_at: Any = None


class MetricsReport(msgspec.Struct):
    instance: InstanceInfo
    requests: dict[str, SubjectMetrics]  # per subject
    pool: PoolMetrics
    writer: WriterMetrics
    queries_ms: dict[str, Figures]  # per "<entity>.<repository operation>"
    relay: RelayMetrics
    cache: CacheMetrics
    integrity: IntegrityMetrics


class MetricsService:
    def __init__(
        self,
        db: Database,
        relay: Relay | None,
        cache: RecordCache,
        integrity: IntegrityLog,
        instance: Instance,
        requests: RequestMetrics,
    ) -> None:
        self.db = db
        self.relay = relay
        self.cache = cache
        self.integrity = integrity
        self.instance = instance
        self.requests = requests

    async def report(self) -> MetricsReport:
        pending, oldest, dead = await self.db.read(
            lambda cur: (*OutboxRepository(cur).backlog(), DeadLetterRepository(cur).count())
        )
        pool = self.db.stats()
        requests = {
            subject: SubjectMetrics(s.num_requests, s.num_errors, s.last_error, figures(s.latency.summary(), 1000))
            for subject, s in sorted(self.requests.subjects.items())
        }
        latest = self.integrity.latest
        return MetricsReport(
            instance=self.instance.info(),
            requests=requests,
            pool=PoolMetrics(pool.size, pool.in_use, pool.waiting, pool.waits, round(pool.wait_seconds, 6)),
            writer=WriterMetrics(self.db.queue_length, figures(self.db.group_sizes.summary())),
            queries_ms={key: figures(summary, 1000) for key, summary in QUERY_TIMES.summaries().items()},
            relay=self._relay(pending, None if oldest is None else (utc_now() - oldest).total_seconds(), dead),
            cache=CacheMetrics(self.cache.hits, self.cache.misses, self.cache.entries),
            integrity=IntegrityMetrics(
                ok=None if latest is None else latest.ok, checked_at=None if latest is None else latest.checked_at
            ),
        )

    def _relay(self, pending: int, oldest_age: float | None, dead_letters: int) -> RelayMetrics:
        if self.relay is None:
            return RelayMetrics(False, 0, 0, pending, oldest_age, None, None, 0, dead_letters)
        s = self.relay.stats
        lag = round(s.lag_seconds, 6) if s.last_published_at is not None else None
        return RelayMetrics(
            True, s.published, s.failed_attempts, pending, oldest_age, lag, s.last_error, s.repairs, dead_letters
        )
