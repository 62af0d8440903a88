"""The outbox relay: publishes committed changes to JetStream in commit order and
forgets them only after JetStream acknowledged them. Never drops an entry:
failures are retried with backoff until NATS is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import nats.errors

from service.model.columns import utc_now
from service.store.database import Database
from service.store.outbox import OutboxRepository
from service.sync.check import repair
from service.sync.jetstream import JetStreamSync

log = logging.getLogger(__name__)

# What a publish fails with while NATS or a bucket is away (logged briefly); anything else is
# logged with its traceback, and retried all the same.
RETRYABLE = (nats.errors.Error, asyncio.TimeoutError, ConnectionError, OSError)


@dataclass
class RelayStats:
    published: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    last_published_at: datetime | None = None
    lag_seconds: float = 0.0  # commit -> JetStream ack of the last published change
    repairs: int = 0
    buckets_recreated: int = 0  # KV buckets found missing by the periodic check and refilled


class Relay:
    def __init__(
        self,
        db: Database,
        sync: JetStreamSync,
        *,
        batch_size: int = 1000,
        idle_poll: float = 1.0,
        kv_check_interval: float = 5.0,
    ) -> None:
        self.db = db
        self.sync = sync
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.kv_check_interval = kv_check_interval
        self._next_check = time.monotonic() + kv_check_interval
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()  # a repair and a batch never interleave

    def notify(self) -> None:
        """Called after each commit that wrote to the outbox."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Try to drain what is pending, then stop; anything left stays in the outbox for next start."""
        if self._task is None:
            return
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and await self.pending() and self.stats.last_error is None:
            self.notify()
            await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def pending(self) -> int:
        return (await self.db.read(lambda cur: OutboxRepository(cur).backlog()))[0]

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No batch is published while inside: for work that writes KV beside the relay."""
        async with self._lock:
            yield

    async def repair(self) -> dict[str, dict[str, int]]:
        """Rewrite KV from DuckDB between two batches, so no older outbox entry lands after it."""
        async with self._lock:
            result = await repair(self.db, self.sync)
            self.stats.repairs += 1
            return result

    async def _run(self) -> None:
        backoff = 0.05
        needs_ensure = False
        while not self._stopping:
            try:
                if needs_ensure:
                    recreated = await self.sync.ensure()
                    needs_ensure = False
                    if recreated:
                        log.warning("KV buckets %s were missing; rebuilding them from DuckDB", sorted(recreated))
                        await self.repair()
                await self._check_buckets()
                published = await self._publish_batch()
                backoff = 0.05
            except Exception as exc:
                self.stats.failed_attempts += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, RETRYABLE):
                    log.warning("outbox relay: publish failed (%s); retrying in %.2fs", self.stats.last_error, backoff)
                else:
                    log.exception("outbox relay: unexpected failure; retrying in %.2fs", backoff)
                needs_ensure = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not published:
                self._wake.clear()
                until_check = max(self._next_check - time.monotonic(), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(self.idle_poll, until_check))

    async def _check_buckets(self) -> None:
        """Every kv_check_interval: recreate and refill from DuckDB any KV bucket deleted at run
        time, without waiting for a write to that entity to fail on it."""
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.kv_check_interval
        missing = await self.sync.missing_buckets()
        if missing:
            log.warning("KV buckets %s are missing; recreating them and refilling them from DuckDB", sorted(missing))
            await self.sync.ensure()
            await self.repair()
            self.stats.buckets_recreated += len(missing)

    async def _publish_batch(self) -> int:
        async with self._lock:
            changes = await self.db.read(lambda cur: OutboxRepository(cur).pending(self.batch_size))
            if not changes:
                return 0
            await self.sync.publish(changes)
            last = changes[-1].seq
            await self.db.write(lambda uow: uow.outbox.remove_through(last))
        now = utc_now()
        self.stats.published += len(changes)
        self.stats.last_published_at = now
        self.stats.lag_seconds = (now - changes[-1].occurred_at).total_seconds()
        self.stats.last_error = None
        return len(changes)
