"""Health reports for `ekko.database.health` and `ekko.health`."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime
from typing import Any, Literal

import duckdb
import msgspec

from service import __version__
from service.config import Settings
from service.model.columns import utc_now
from service.store.database import Database
from service.store.dead_letter import DeadLetterRepository
from service.store.outbox import OutboxRepository
from service.store.rollup_resort import RollupResort, unsorted_rows
from service.store.sql import table_counts
from service.sync.relay import Relay

log = logging.getLogger(__name__)

Status = Literal["healthy", "degraded", "unhealthy"]
BACKLOG_DEGRADED_AFTER = 30.0  # seconds the oldest pending change may wait before we call it degraded


class PoolReport(msgspec.Struct):
    size: int
    in_use: int
    waiting: int
    waits: int = 0
    wait_seconds: float = 0.0


class InstanceInfo(msgspec.Struct):
    """Which process this is: what `ekko status` shows next to health and metrics."""

    name: str
    version: str
    deployment: str
    host: str
    pid: int
    database: str
    started_at: datetime
    uptime_seconds: float


class Instance:
    """This process, from its start: version, deployment name, uptime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = utc_now()
        self._started = time.monotonic()

    @property
    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self._started, 3)

    def info(self) -> InstanceInfo:
        return InstanceInfo(
            name="ekko",
            version=__version__,
            deployment=self.settings.deployment,
            host=socket.gethostname(),
            pid=os.getpid(),
            database=str(self.settings.duckdb_path.absolute()),
            started_at=self.started_at,
            uptime_seconds=self.uptime_seconds,
        )


class SyncReport(msgspec.Struct):
    enabled: bool
    pending: int = 0
    oldest_pending_age_seconds: float | None = None
    published: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    lag_seconds: float | None = None
    repairs: int = 0
    dead_letters: int = 0  # outbox entries that can never be published; `ekko sync repair` clears them


class RollupOrder(msgspec.Struct):
    """balance_rollups' order by wallet (decision 55): rows added since the last sort, and the
    service's re-sorts since it started."""

    rows: int
    unsorted_rows: int
    resort_after: int  # unsorted rows (and a tenth of the sorted ones) that start a re-sort; 0: never
    sorts: int = 0
    last: str | None = None  # the outcome of the latest attempt ("sorted", or why it gave up)


class DatabaseHealth(msgspec.Struct):
    status: Status
    path: str
    size_bytes: int
    schema_version: int
    tables: dict[str, int]
    pool: PoolReport
    sync: SyncReport
    integrity: Any = None
    """The latest integrity check (a migration's validation, `checked_at` is its time), also one run
    by `ekko migrate` while the service was stopped; null when none ever ran on this database."""
    error: str | None = None
    version: str = __version__
    deployment: str = ""
    uptime_seconds: float = 0.0
    rollups: RollupOrder | None = None


def _counts(cur: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], int, Any, int, tuple[int, int]]:
    tables = table_counts(cur)
    pending, oldest = OutboxRepository(cur).backlog()
    return tables, pending, oldest, DeadLetterRepository(cur).count(), unsorted_rows(cur)


async def database_health(
    db: Database,
    relay: Relay | None,
    *,
    sync_enabled: bool,
    integrity: Any = None,
    resort: RollupResort | None = None,
) -> DatabaseHealth:
    stats = db.stats()
    size = db.path.stat().st_size if db.path.exists() else 0
    wal = db.path.with_name(db.path.name + ".wal")
    size += wal.stat().st_size if wal.exists() else 0
    pool = PoolReport(stats.size, stats.in_use, stats.waiting, stats.waits, round(stats.wait_seconds, 6))
    sync = SyncReport(enabled=sync_enabled)
    try:
        tables, pending, oldest, dead, (rows, unsorted) = await db.read(_counts)
    except duckdb.Error as exc:
        log.exception("database health check failed")
        return DatabaseHealth("unhealthy", str(db.path), size, db.schema_version, {}, pool, sync, integrity, str(exc))
    age = None if oldest is None else (utc_now() - oldest).total_seconds()
    storage = await storage_fault(db)
    if relay is not None:
        s = relay.stats
        sync = SyncReport(
            enabled=sync_enabled,
            pending=pending,
            oldest_pending_age_seconds=age,
            published=s.published,
            failed_attempts=s.failed_attempts,
            last_error=s.last_error,
            lag_seconds=s.lag_seconds if s.last_published_at else None,
            repairs=s.repairs,
            dead_letters=dead,
        )
    else:
        sync = SyncReport(enabled=sync_enabled, pending=pending, oldest_pending_age_seconds=age, dead_letters=dead)
    degraded = (
        stats.waiting > 0
        or dead > 0
        or (age is not None and age > BACKLOG_DEGRADED_AFTER)
        or (relay is not None and relay.stats.last_error is not None and pending > 0)
        or (integrity is not None and getattr(integrity, "ok", True) is False)
        or storage is not None
    )
    status: Status = "degraded" if degraded else "healthy"
    error = None if storage is None else f"writes are refused: {storage}"
    rollups = RollupOrder(rows, unsorted, resort_after=0 if resort is None else resort.min_rows)
    if resort is not None:
        rollups.sorts, rollups.last = resort.sorts, resort.last
    return DatabaseHealth(
        status, str(db.path), size, db.schema_version, tables, pool, sync, integrity, error, rollups=rollups
    )


async def storage_fault(db: Database) -> str | None:
    """Why writes are refused (disk full, read-only), or None. A recorded fault is probed
    again, so health turns healthy once space returns, before the next write proves it."""
    if db.storage_error is None:
        return None
    if await asyncio.to_thread(db.probe_storage) is None:
        log.warning("the data directory takes writes again")
        db.storage_error = None
    return db.storage_error
