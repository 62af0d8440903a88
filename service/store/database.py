"""DuckDB access off the event loop: a pool of read cursors and one writer.

DuckDB lets one process open a file read-write, and one connection object is
not thread-safe: each pool thread gets its own cursor of the one connection.
All writes go through a single writer thread, so check-then-write rules
(uniqueness, foreign keys) are race-free and outbox sequence numbers follow
commit order. A write is a function of a UnitOfWork (service.store.uow).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from service.model.correlation import CORRELATION_ID
from service.model.errors import DatabaseLocked, ServiceError, StorageUnavailable
from service.store.checkpoints import IdleCheckpoints
from service.store.ddl import apply_migrations
from service.store.outbox import Change
from service.store.rollup_journal import RollupJournal
from service.store.scratch import ATTACH
from service.store.sql import Cursor
from service.store.storage import probe, storage_cause
from service.store.timings import Distribution
from service.store.uow import UnitOfWork
from service.store.write_batch import Lookup, WriteBatch

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_GROUP = 256  # writes folded into one transaction at most


@dataclass(frozen=True)
class PoolStats:
    size: int
    in_use: int
    waiting: int
    waits: int = 0  # reads since start that found every cursor busy
    wait_seconds: float = 0.0  # their total time waiting for one


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the file, turning DuckDB's lock error into one that says what to do.
    `read_only` neither creates nor changes the file (`ekko migrate --check-only`)."""
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except OSError as exc:  # the data directory cannot be made (a file in the way, no permission)
        raise StorageUnavailable(f"cannot open the database {path}: {exc}") from exc
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise StorageUnavailable(f"cannot open the database {path}: {exc}") from exc
        pid = re.search(r"PID (\d+)", str(exc))
        holder = f" (process {pid.group(1)})" if pid else ""
        raise DatabaseLocked(
            f"{path} is in use by another process{holder}: DuckDB allows one process per file. "
            "Stop `ekko run`, or use the admin subjects of the running service."
        ) from exc


def in_one_snapshot(fn: Callable[[Cursor], T]) -> Callable[[Cursor], T]:
    """fn run inside one read transaction on its cursor: all its statements see the same
    committed state even while the writer commits (a cursor otherwise commits per statement)."""

    def run(cur: Cursor) -> T:
        cur.execute("BEGIN TRANSACTION")
        try:
            return fn(cur)
        finally:
            cur.execute("ROLLBACK")  # read only (temp tables included): nothing to keep

    return run


def _settle(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(frozen=True)
class _Queued:
    fn: Callable[[UnitOfWork], object]
    future: asyncio.Future
    lookups: tuple[Lookup, ...]
    alone: bool
    correlation_id: str | None  # of the request that asked for it (read on the event loop)


class Database:
    """The one DuckDB connection of this process, used through `read` and `write`."""

    def __init__(self, path: Path, pool_size: int = 10, *, fill_outbox: bool = True) -> None:
        self.path = path
        self.pool_size = pool_size
        self.fill_outbox = fill_outbox  # changes recorded by units of work go to the outbox
        self.schema_version = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._idle: asyncio.Queue[Cursor] | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._writer_cursor: Cursor | None = None
        self.checkpoints: IdleCheckpoints | None = None
        self._waiting = 0
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._draining = False
        self.group_commits = 0
        # Why the last write could not be committed (disk full, read-only), until one commits.
        self.storage_error: str | None = None
        self.checkpoint_error: str | None = None
        self.group_sizes = Distribution()  # writes per group transaction
        self.pool_waits = 0
        self.pool_wait_seconds = 0.0
        self._batch = WriteBatch()  # the writer thread's; its units of work share it
        # Changes recorded by deferred tasks (no single write owns them), committed: handed to
        # on_deferred_changes on the event loop (the app updates the cache and wakes the relay).
        self._deferred_changes: list[Change] = []
        self.on_deferred_changes: Callable[[list[Change]], None] = lambda changes: None
        # Batch writes (an ingest of thousands of rows) under way, from decoding to reply: the
        # relay holds back while they follow each other (service.sync.relay), so they get the CPU.
        self.bulk_writes = 0
        self.bulk_ended = 0.0  # time.monotonic() when the last one ended

    # -- lifecycle -----------------------------------------------------------
    def open(self) -> Database:
        self._con = connect(self.path)
        self._con.execute(ATTACH)  # bulk writes' inputs, built off the writer (decision 45)
        IdleCheckpoints.configure(self._con)
        self.schema_version = apply_migrations(self._con)
        self._idle = asyncio.Queue()
        for _ in range(self.pool_size):
            self._idle.put_nowait(self._con.cursor())
        self._readers = ThreadPoolExecutor(self.pool_size, thread_name_prefix="duckdb-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="duckdb-write")
        self._writer_cursor = self._con.cursor()
        self.checkpoints = IdleCheckpoints(self.path, self._writer, self._writer_cursor)
        return self

    def close(self) -> bool:
        """Finish queued work, fold the WAL into the file, release the lock. False when the
        checkpoint failed (`checkpoint_error` says why): the WAL is replayed at next open."""
        if self._con is None:
            return self.checkpoint_error is None
        if self.checkpoints is not None:
            self.checkpoints.close()
        for pool in (self._writer, self._readers):
            if pool is not None:
                pool.shutdown(wait=True)
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            self.checkpoint_error = str(exc)
            log.error("checkpoint on close failed (%s); the WAL will be replayed on next open", exc)
        try:
            self._con.close()
        except duckdb.Error as exc:  # closing checkpoints again; the WAL stays for the next open
            self.checkpoint_error = self.checkpoint_error or str(exc)
            log.error("closing DuckDB failed (%s)", exc)
        self._con = None
        return self.checkpoint_error is None

    def probe_storage(self) -> str | None:
        """None when the data directory takes a write again (service.store.storage.probe)."""
        return probe(self.path)

    @property
    def is_open(self) -> bool:
        return self._con is not None

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("database is not open")
        return self._con

    # -- work ----------------------------------------------------------------
    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Marks a batch write under way (see bulk_writes)."""
        self.bulk_writes += 1
        try:
            yield
        finally:
            self.bulk_writes -= 1
            self.bulk_ended = time.monotonic()

    def bulk_recent(self, within: float) -> bool:
        """A batch write is under way, or one ended less than `within` seconds ago (a client
        streaming batches has the next one on its way)."""
        return self.bulk_writes > 0 or time.monotonic() - self.bulk_ended < within

    async def read(self, fn: Callable[[Cursor], T]) -> T:
        """Run fn(cursor) on a pool thread. Waits for a free cursor when all are busy."""
        idle = self._idle
        assert idle is not None, "database is not open"
        if idle.empty():  # only a read that has to wait is timed: the common case stays free
            started = time.perf_counter()
            self._waiting += 1
            try:
                cursor = await idle.get()
            finally:
                self._waiting -= 1
                self.pool_waits += 1
                self.pool_wait_seconds += time.perf_counter() - started
        else:
            cursor = idle.get_nowait()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, fn, cursor)
        finally:
            idle.put_nowait(cursor)

    async def write(self, fn: Callable[[UnitOfWork], T], *, lookups: Sequence[Lookup] = (), alone: bool = False) -> T:
        """Run fn(unit of work) on the writer thread inside a transaction; its result once committed.

        Group commit: writes that queue up while one commits are run together in
        the next transaction, so one fdatasync serves them all. A write refused by a
        rule (ServiceError) before it wrote anything is answered with it once the
        others commit; refused after writing (or after taking the raw cursor), the
        transaction is rolled back and the others run again without it; any other
        failure rolls back and runs each write alone, so a failing write never takes
        another down with it (fn must only touch the database, which every writer here does).

        The unit of work's repositories share the group's batch (service.store.write_batch):
        `lookups` are the (table, id) pairs fn will ask `exists` about, fetched for the
        whole group at once. A fn that takes `uow.cursor` sees every held-back row flushed,
        and the writer forgets what it knew about ids once fn is done.

        alone: fn gets a transaction of its own, never grouped, so it runs exactly once
        and nobody else's failure reruns it (migration, restore, reset: long and heavy).

        The unit of work carries the correlation id of the request being served, read here
        (CORRELATION_ID is set in the caller's task; the writer thread cannot see it).
        """
        if self._writer is None or self._con is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.append(_Queued(fn, future, tuple(lookups), alone, CORRELATION_ID.get()))
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._writer.submit(self._drain, loop)
            except RuntimeError:  # closing: the writer takes no more work
                with self._lock:
                    self._queue.clear()
                    self._draining = False
                raise RuntimeError("database is closing") from None
        return await future

    async def between_writes(self, fn: Callable[[Cursor, RollupJournal], T]) -> T:
        """fn(the writer's cursor, its roll-up journal) on the writer thread while no write
        transaction is open: it runs once the writer has drained its queue (writes that keep
        coming join the drain under way, so under a steady stream of writes it waits for a
        pause). For maintenance that must not see a write half done (service.store.rollup_resort)."""
        if self._writer is None or self._writer_cursor is None:
            raise RuntimeError("database is not open")
        cursor, journal = self._writer_cursor, self._batch.rollup_journal
        return await asyncio.wrap_future(self._writer.submit(fn, cursor, journal))

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                size = next((i for i, item in enumerate(self._queue[:MAX_GROUP]) if item.alone), MAX_GROUP) or 1
                batch, self._queue = self._queue[:size], self._queue[size:]
                if not batch:
                    self._draining = False
                    if self.checkpoints is not None and not self.checkpoints.closed:
                        with contextlib.suppress(RuntimeError):  # the loop has closed (a one-shot tool)
                            loop.call_soon_threadsafe(self.checkpoints.writes_done, loop, self._is_writing)
                    return
            self.group_sizes.add(len(batch))
            try:
                settled = self._run_group(batch)
            except BaseException as exc:  # a bug or a dying interpreter: fail these writes, never hang them
                settled = [(item, None, exc) for item in batch]
                log.exception("writer: a group failed outside its transaction")
            if self._deferred_changes:  # heard before the replies: a caller then reads them everywhere
                changes, self._deferred_changes = self._deferred_changes, []
                loop.call_soon_threadsafe(self.on_deferred_changes, changes)
            for item, result, error in settled:
                loop.call_soon_threadsafe(_settle, item.future, result, error)

    def _is_writing(self) -> bool:
        return self._draining

    def _run_group(self, batch: list[_Queued]) -> list[tuple[_Queued, object, BaseException | None]]:
        settled: list[tuple[_Queued, object, BaseException | None]] = []
        while batch:
            self.group_commits += 1
            culprit: list[int] = []  # the index of the write running, while one is
            try:
                outcomes = self.transaction(functools.partial(self._run_each, batch, culprit))
            except Exception as exc:  # noqa: BLE001 - handed to the caller's future, re-raised there
                if isinstance(exc, StorageUnavailable):  # the disk refuses every write alike
                    settled.extend((item, None, exc) for item in batch)
                    return settled
                if isinstance(exc, ServiceError) and culprit and len(batch) > 1:
                    # Refused after it wrote: roll back, answer it, run the others again without it.
                    settled.append((batch[culprit[0]], None, exc))
                    batch = batch[: culprit[0]] + batch[culprit[0] + 1 :]
                    continue
                if len(batch) == 1:
                    settled.append((batch[0], None, exc))
                else:
                    settled.extend((item, *self._alone(item)) for item in batch)
                return settled
            # Refusals are answered only now: they were judged against writes that had to commit.
            settled.extend((item, result, error) for item, (result, error) in zip(batch, outcomes, strict=True))
            return settled
        return settled

    def _run_each(
        self, batch: list[_Queued], culprit: list[int], cur: Cursor
    ) -> list[tuple[object, BaseException | None]]:
        """The group's writes in order, inside its transaction: (result, refusal) each."""
        self._batch.prefetch(cur, [lookup for item in batch for lookup in item.lookups])
        outcomes: list[tuple[object, BaseException | None]] = []
        for index, item in enumerate(batch):
            culprit[:] = [index]
            writes = self._batch.writes
            uow = self._unit(cur, item.correlation_id)
            try:
                outcomes.append((uow.run(item.fn), None))
            except ServiceError as exc:
                if uow.bypassed or self._batch.writes != writes:
                    raise
                outcomes.append((None, exc))  # refused before writing anything: the rest go on
            finally:
                if uow.bypassed:
                    self._batch.forget()  # raw SQL may have changed any row
        culprit.clear()  # from here on (flush, COMMIT) no single write is to blame
        return outcomes

    def _unit(self, cur: Cursor, correlation_id: str | None = None) -> UnitOfWork:
        return UnitOfWork(cur, self._batch, fill_outbox=self.fill_outbox, correlation_id=correlation_id)

    def _alone(self, item: _Queued) -> tuple[object, BaseException | None]:
        try:
            return self.transaction(lambda cur: self._unit(cur, item.correlation_id).run(item.fn)), None
        except Exception as exc:  # noqa: BLE001 - handed to the caller's future, re-raised there
            return None, exc

    def transaction(self, fn: Callable[[Cursor], T], cursor: Cursor | None = None) -> T:
        """Synchronous transaction on a raw cursor; for the writer thread and for offline tools."""
        cur = cursor or self._writer_cursor
        assert cur is not None, "database is not open"
        cur.execute("BEGIN TRANSACTION")
        try:
            result = fn(cur)
            deferred = self._run_deferred(cur)
            self._batch.flush(cur)
            cur.execute("COMMIT")
            self._batch.forget()  # what it knew held inside this transaction only
            self._deferred_changes.extend(deferred)
        except BaseException as exc:
            self._batch.clear()
            with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT rolled back already
                cur.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error) and (cause := storage_cause(exc)) is not None:
                if self.storage_error is None:
                    log.error("the database cannot be written: %s", cause)
                self.storage_error = cause
                raise StorageUnavailable(f"the database cannot be written: {cause}") from exc
            raise
        if self.storage_error is not None:
            log.warning("the database can be written again")
            self.storage_error = None
        return result

    def _run_deferred(self, cur: Cursor) -> list[Change]:
        """The group's shared tasks (WriteBatch.deferred), once each; the changes they recorded.
        A task's own changes may start another (wallets.balance following a balance row is a
        wallet change): rounds run until none is left, so none waits for the next transaction."""
        changes: list[Change] = []
        while tasks := self._batch.take_deferred():
            for task in tasks:
                unit = self._unit(cur)
                unit.run(task.run)  # sealed like a write: its changes reach the outbox, one tx of their own
                changes += unit.changes
        return changes

    def stats(self) -> PoolStats:
        idle = self._idle.qsize() if self._idle is not None else 0
        in_use = self.pool_size - idle
        return PoolStats(self.pool_size, in_use, self._waiting, self.pool_waits, self.pool_wait_seconds)

    @property
    def queue_length(self) -> int:
        """Writes waiting for the writer thread (not counting the group it is running)."""
        return len(self._queue)
