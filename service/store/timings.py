"""Durations and sizes kept in memory for `ekko.metrics`: counts, totals and percentiles
over a window of recent samples. Thread-safe (pool threads and the writer record here),
cheap enough for every request (a lock, two additions and a list store).

`QUERY_TIMES` is the process's one record of repository query times: a Repository is
built per call on any cursor, so it has no Database to hang them on.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
WINDOW = 1024  # recent samples the percentiles are computed over


@dataclass(frozen=True)
class Summary:
    count: int
    total: float
    max: float
    p50: float
    p90: float
    p99: float


class Distribution:
    """Count, total and maximum since start; p50/p90/p99 of the last WINDOW samples."""

    __slots__ = ("_lock", "_recent", "count", "max", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._recent: list[float] = []
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._add(value)

    def _add(self, value: float) -> None:
        if len(self._recent) < WINDOW:
            self._recent.append(value)
        else:
            self._recent[self.count % WINDOW] = value
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value

    def summary(self) -> Summary:
        with self._lock:
            recent = sorted(self._recent)
            count, total, peak = self.count, self.total, self.max
        return Summary(count, total, peak, _rank(recent, 0.50), _rank(recent, 0.90), _rank(recent, 0.99))


class LoopDistribution(Distribution):
    """A Distribution only the event loop adds to and reads (request durations): no lock on
    the add, ~1% of a cached get. summary() still takes the lock, which nothing else holds."""

    __slots__ = ()

    def add(self, value: float) -> None:
        self._add(value)


def _rank(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (0 when there are no samples)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


class QueryTimes:
    """Seconds per (entity, repository operation); a WARNING for each query slower than `slow_after`."""

    def __init__(self) -> None:
        self.slow_after: float | None = None  # seconds; None: no warnings (the app sets EKKO_SLOW_QUERY_MS)
        self._by_key: dict[tuple[str, str], Distribution] = {}
        self._lock = threading.Lock()

    def record(self, entity: str, operation: str, seconds: float) -> None:
        key = (entity, operation)
        dist = self._by_key.get(key)
        if dist is None:
            with self._lock:
                dist = self._by_key.setdefault(key, Distribution())
        dist.add(seconds)
        if self.slow_after is not None and seconds > self.slow_after:
            # The entity and operation only: the statement's parameters may hold a password hash.
            log.warning(
                "slow query: %s.%s took %.1f ms",
                entity,
                operation,
                seconds * 1000,
                extra={"entity": entity, "operation": operation, "duration_ms": round(seconds * 1000, 3)},
            )

    def summaries(self) -> dict[str, Summary]:
        with self._lock:
            items = list(self._by_key.items())
        return {f"{entity}.{op}": dist.summary() for (entity, op), dist in sorted(items)}


QUERY_TIMES = QueryTimes()


class _HasSpec(Protocol):
    @property
    def spec(self) -> Any: ...


S = TypeVar("S", bound=_HasSpec)


def timed(operation: str) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Record a repository method's duration under (its entity, operation) in QUERY_TIMES."""

    def wrap(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(method)
        def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                QUERY_TIMES.record(self.spec.name, operation, time.perf_counter() - started)

        return run

    return wrap
