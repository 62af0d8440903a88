"""The outbox relay: publishes committed changes to JetStream in commit order and
forgets them only after JetStream acknowledged them. Failures are retried with
backoff until NATS is back. An entry that can never be published (too large for
max_payload, an id KV refuses) is moved to the dead-letter table with its reason
instead, so one entry cannot stop every later one (docs/decisions.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import nats.errors
import nats.js.errors

from service.model.columns import utc_now
from service.store.database import Database
from service.store.dead_letter import DeadLetterRepository
from service.store.outbox import Change, OutboxRepository
from service.store.uow import UnitOfWork
from service.sync.check import repair
from service.sync.jetstream import PERMANENT_API_ERRORS, JetStreamSync

log = logging.getLogger(__name__)

# What a publish fails with while NATS or a bucket is away (logged briefly); anything else is
# logged with its traceback, and retried all the same.
RETRYABLE = (nats.errors.Error, asyncio.TimeoutError, ConnectionError, OSError)
BULK_YIELD = 5.0  # seconds a change waits at most while the relay leaves the CPU to batch writes
BULK_POLL = 0.01
BULK_GRACE = 0.25  # seconds after a batch write during which the next one is expected


@dataclass
class RelayStats:
    published: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    last_published_at: datetime | None = None
    lag_seconds: float = 0.0  # commit -> JetStream ack of the last published change
    repairs: int = 0
    buckets_recreated: int = 0  # KV buckets found missing by the periodic check and refilled
    dead_letters: int = 0  # entries moved to the dead-letter table since start


def _remove_through(uow: UnitOfWork, seq: int) -> None:
    uow.outbox.remove_through(seq)


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
        self._stop_requested = False  # stop() began: drain without holding back
        self._lock = asyncio.Lock()  # a repair and a batch never interleave
        # Published and acknowledged through this seq; the outbox forgets them in the background
        # (_forget), so the next batch does not wait for the writer (docs/decisions.md 47).
        self._published_through = 0
        self._forgotten_through = 0  # ... and deleted from the outbox through this one
        self._forgetting: asyncio.Task[None] | None = None
        self._forget_failing = False

    def notify(self) -> None:
        """Called after each commit that wrote to the outbox."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = self._stop_requested = False
        # From the outbox's start: what is left of a run before is published again (JetStream
        # drops repeats within its duplicate window), never skipped.
        self._published_through = self._forgotten_through = 0
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Try to drain what is pending, then stop; anything left stays in the outbox for next start."""
        if self._task is None:
            return
        self._stop_requested = True
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
        if self._forgetting is not None:  # what was published leaves the outbox before the database closes
            await self._forgetting

    async def pending(self) -> int:
        return (await self.db.read(lambda cur: OutboxRepository(cur).backlog()))[0]

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No batch is published while inside: for work that writes KV beside the relay. What
        was published has left the outbox (unless the disk refuses it), so whatever is still
        there is what the relay will publish."""
        async with self._lock:
            await self._forgotten()
            yield

    async def repair(self) -> dict[str, dict[str, int]]:
        """Rewrite KV from DuckDB between two batches, so no older outbox entry lands after it."""
        async with self._lock:
            await self._forgotten()
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
                await self._yield_to_bulk_writes()
                # Cleared before reading: a commit from here on (during the read or the publish)
                # wakes the wait below instead of being missed for idle_poll.
                self._wake.clear()
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
                until_check = max(self._next_check - time.monotonic(), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(self.idle_poll, until_check))

    async def _yield_to_bulk_writes(self) -> None:
        """While batch writes follow each other (Database.bulk_recent), wait, but never past
        the moment the oldest pending change has waited BULK_YIELD: publishing costs the event
        loop ~0.1 ms per change, so a relay beside a stream of ingests takes a share of their
        rate (docs/decisions.md 39, 41). A burst of ingests then runs alone; a
        stream longer than BULK_YIELD shares the CPU with the relay, which keeps its lag near
        BULK_YIELD as long as it can keep up. Pending changes are durable meanwhile."""
        if self._stop_requested or not self.db.bulk_recent(BULK_GRACE):
            return
        _, oldest = await self.db.read(lambda cur: OutboxRepository(cur).backlog())
        waited = 0.0 if oldest is None else (utc_now() - oldest).total_seconds()
        deadline = time.monotonic() + BULK_YIELD - waited
        while self.db.bulk_recent(BULK_GRACE) and time.monotonic() < deadline and not self._stop_requested:
            await asyncio.sleep(BULK_POLL)

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

    async def _publish_one_by_one(self, changes: list[Change]) -> list[tuple[Change, str]]:
        """JetStream refused some change of the batch for good: publish each alone, in order,
        to find which; returns those. Any other failure propagates (the batch is retried)."""
        refused = []
        for change in changes:
            try:
                await self.sync.publish([change])
            except nats.js.errors.APIError as exc:
                if exc.err_code not in PERMANENT_API_ERRORS:
                    raise
                refused.append((change, f"JetStream refused it: {exc.description} (error {exc.err_code})"))
        return refused

    async def _bury(self, dead: list[tuple[Change, str]], last: int) -> None:
        """Move the dead entries to the dead-letter table and forget the batch, in one transaction."""

        def move(uow: UnitOfWork) -> None:
            DeadLetterRepository(uow.cursor).add(dead)
            uow.outbox.remove_through(last)

        await self.db.write(move)
        self.stats.dead_letters += len(dead)
        for change, reason in dead:
            log.error(
                "outbox relay: %s %s v%d (%s, outbox seq %d) can never be published: %s; moved to"
                " outbox_dead_letter (`ekko sync repair` rewrites KV from DuckDB and clears it)",
                change.entity,
                change.entity_id[:80],
                change.version,
                change.action,
                change.seq,
                reason,
            )

    async def _forgotten(self) -> None:
        """Wait for the deletion of what was published (batches are not published meanwhile:
        the caller holds the lock)."""
        if self._forgotten_through < self._published_through:
            self._forget_published()
        if self._forgetting is not None:
            await self._forgetting

    def _forget_published(self) -> None:
        """Have the outbox forget what was published, beside the next batches: one removal at a
        time, each up to the newest published seq when it starts."""
        if self._forgetting is None or self._forgetting.done():
            self._forgetting = asyncio.create_task(self._forget(), name="outbox-forget")

    async def _forget(self) -> None:
        while self._forgotten_through < self._published_through:
            through = self._published_through
            try:
                await self.db.write(functools.partial(_remove_through, seq=through))
            except Exception as exc:  # noqa: BLE001 - the entries stay; the next batch's removal takes them
                # Once per failing spell: while the disk refuses writes, each idle second retries.
                level = logging.DEBUG if self._forget_failing else logging.WARNING
                log.log(level, "outbox relay: could not forget published entries (%s); retrying", exc)
                self._forget_failing = True
                return
            self._forgotten_through = through
            self._forget_failing = False

    async def _publish_batch(self) -> int:
        async with self._lock:
            after = self._published_through
            changes = await self.db.read(lambda cur: OutboxRepository(cur).pending(self.batch_size, after))
            if not changes:
                if self._forgotten_through < self._published_through:  # a delete failed: again, now idle
                    self._forget_published()
                return 0
            max_payload = self.sync.connection.max_payload
            dead = [(c, reason) for c in changes if (reason := self.sync.unpublishable(c, max_payload))]
            dead_seqs = {c.seq for c, _ in dead}
            # Later changes of a dead entry's key still publish: KV is latest-wins, so they
            # supersede it; what the dead one would have put stays missing until repair.
            publishable = [c for c in changes if c.seq not in dead_seqs]
            try:
                await self.sync.publish(publishable)
            except nats.js.errors.APIError as exc:
                if exc.err_code not in PERMANENT_API_ERRORS:
                    raise
                dead += await self._publish_one_by_one(publishable)
            last = changes[-1].seq
            if dead:
                await self._bury(dead, last)
            self._published_through = last
            if not dead:
                self._forget_published()
        now = utc_now()
        self.stats.published += len(changes) - len(dead)
        self.stats.last_published_at = now
        self.stats.lag_seconds = (now - changes[-1].occurred_at).total_seconds()
        self.stats.last_error = None
        return len(changes)
