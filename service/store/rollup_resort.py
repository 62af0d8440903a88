"""Keeping `balance_rollups` clustered by wallet while ingest appends to it (decision 55).

A wallet's roll-ups are found by scanning the table (DuckDB reads an index only for equality
or short IN lists, decision 50); zone maps skip the row groups that cannot hold the wallet
only while the table is sorted by wallet. A rebuild writes it so, but new intervals are
appended as they arrive, every wallet's side by side, and a wallet's year then lies in every
row group. Once the rows added since the last sort reach `min_rows` (and a tenth of the
sorted ones), `RollupResort` sorts the table again beside the writer:

1. Between writes, on the writer thread: a cursor of its own begins a transaction (the
   snapshot it will copy), and the writer's journal starts naming the roll-ups each write
   changes (service.store.rollup_journal).
2. On a thread of its own: that cursor copies the table, sorted, into SORTED (the same DDL,
   so the same primary key) and commits. Writes go on meanwhile; they write nothing the copy
   writes.
3. Between writes again, in one transaction on the writer's cursor: the journaled roll-ups
   are taken again from the live table, the two tables compared (row count and a sum of
   every row's hash: a write the journal missed keeps the live table and is logged),
   the live table dropped and SORTED renamed into its place. A reader in the middle of a
   statement keeps the old table (MVCC); its next statement reads the new one.

It gives up, drops SORTED and tries again later when the journal is broken (raw SQL or a
restore rewrote roll-ups it cannot name), the live table is no longer the one copied, or the
journal names more than `max_journal` roll-ups (replacing them would hold the writer too
long: the copy ran beside a heavy ingest; the journal stops growing there). A crash leaves
at most a committed SORTED, dropped when the service starts; the table's comment records
how many rows the last sort left in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import duckdb

from service.store.balances import mark_clustered
from service.store.database import Database
from service.store.rollup_journal import JOURNAL, RollupJournal
from service.store.sql import Cursor, first_row, one_row

log = logging.getLogger(__name__)

TABLE = "balance_rollups"
SORTED = "balance_rollups_sorted"
ORDER = "wallet_id, interval, start"
ROW_GROUP = 122_880  # DuckDB's rows per row group
MIN_ROWS = 2 * ROW_GROUP  # rows added since the last sort before another is worth it
MAX_JOURNAL = 200_000  # roll-ups changed during the copy beyond which the swap gives up
CHECK_EVERY = 60.0  # seconds between looks at the table
_CLUSTERED = re.compile(r"clustered rows: (\d+)")


# The live table's row in DuckDB's catalogue (this database's, not the attached scratch one's).
_CATALOGUE = (
    f"FROM duckdb_tables() WHERE table_name = '{TABLE}' AND schema_name = 'main' AND database_name = current_database()"
)


def unsorted_rows(cur: Cursor) -> tuple[int, int]:
    """(rows in the table, rows added since the last sort: all of them when none is recorded)."""
    row = first_row(cur, f"SELECT comment, (SELECT count(*) FROM {TABLE}) {_CATALOGUE}")
    if row is None:
        return 0, 0
    found = _CLUSTERED.fullmatch(row[0] or "")
    clustered = int(found.group(1)) if found else 0
    return int(row[1]), max(int(row[1]) - clustered, 0)


def is_due(cur: Cursor, min_rows: int) -> bool:
    rows, unsorted = unsorted_rows(cur)
    return unsorted >= max(min_rows, (rows - unsorted) // 10)


@dataclasses.dataclass
class Copy:
    cursor: Cursor  # its own, inside the transaction whose snapshot it copies
    oid: int  # the live table's, when the snapshot was taken
    rows: int


def _oid(cur: Cursor) -> int | None:
    row = first_row(cur, f"SELECT table_oid {_CATALOGUE}")
    return None if row is None else int(row[0])


def begin(writer: Cursor, journal: RollupJournal, max_journal: int = MAX_JOURNAL) -> Copy:
    """Step 1, between writes on the writer thread."""
    writer.execute(f"DROP TABLE IF EXISTS {SORTED}")  # a crash's leftover
    cursor = writer.cursor()
    try:
        cursor.execute("BEGIN TRANSACTION")
        rows = int(one_row(cursor, f"SELECT count(*) FROM {TABLE}")[0])  # the snapshot is taken
        oid = _oid(cursor)
    except BaseException:
        cursor.close()
        raise
    if oid is None:
        cursor.close()
        raise RuntimeError(f"{TABLE} does not exist")
    journal.start(writer, max_journal)
    return Copy(cursor, oid, rows)


def copy_sorted(copy: Copy) -> None:
    """Step 2, on a thread of its own: SORTED, committed, with the live table's DDL. The
    cursor stays open: whoever started the thread closes it once the thread has ended."""
    cur = copy.cursor
    try:
        ddl = one_row(cur, "SELECT sql FROM duckdb_tables() WHERE table_oid = ?", [copy.oid])[0]
        cur.execute(re.sub(rf"^CREATE TABLE {TABLE}\b", f"CREATE TABLE {SORTED}", ddl, count=1))
        cur.execute(f"INSERT INTO {SORTED} SELECT * FROM {TABLE} ORDER BY {ORDER}")
        mark_clustered(cur, SORTED)
        cur.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise


_NAMED = f"(SELECT DISTINCT wallet_id, interval, start FROM {JOURNAL} WHERE interval IS NOT NULL)"
_WHOLE = f"(SELECT DISTINCT wallet_id FROM {JOURNAL} WHERE interval IS NULL)"
_APPLY = (
    # the journaled roll-ups as the live table has them now (gone ones stay gone)
    f"DELETE FROM {SORTED} s USING {_NAMED} j"
    " WHERE s.wallet_id = j.wallet_id AND s.interval = j.interval AND s.start = j.start",
    f"DELETE FROM {SORTED} WHERE wallet_id IN {_WHOLE}",
    f"INSERT INTO {SORTED} SELECT r.* FROM {TABLE} r WHERE r.wallet_id IN {_WHOLE}",
    f"INSERT INTO {SORTED} SELECT r.* FROM {TABLE} r JOIN {_NAMED} j"
    " ON r.wallet_id = j.wallet_id AND r.interval = j.interval AND r.start = j.start"
    f" WHERE r.wallet_id NOT IN {_WHOLE}",
)
# Both tables hold the same rows: their counts and a sum of every row's hash agree (~70 ms a
# table at 2.5M rows, on the writer: a write the journal missed must not be lost by the swap).
_FINGERPRINT = (
    "(SELECT (count(*), sum(hash(wallet_id, interval, start, first, last, min, max, count, last_fiat_value,"
    " first_at, first_id, last_at, last_id))) FROM {table})"
)
_SAME = f"SELECT {_FINGERPRINT.format(table=TABLE)} = {_FINGERPRINT.format(table=SORTED)}"


def swap(writer: Cursor, journal: RollupJournal, copy: Copy) -> str:
    """Step 3, between writes on the writer thread: "sorted", or why it gave up."""
    done = False
    try:
        if journal.broken and journal.named > journal.limit:
            return f"gave up: more than {journal.limit:,} roll-ups changed during the copy"
        if journal.broken:
            return "gave up: roll-ups were rewritten where the journal cannot name them"
        if _oid(writer) != copy.oid:
            return f"gave up: {TABLE} was replaced during the copy"
        writer.execute("BEGIN TRANSACTION")
        try:
            for statement in _APPLY:
                writer.execute(statement)
            if not one_row(writer, _SAME)[0]:  # a write the journal missed (a bug): keep the live table
                writer.execute("ROLLBACK")
                log.error("%s differs from %s after the journal was applied: a write went unjournaled", SORTED, TABLE)
                return "gave up: the sorted copy differs from the table (a write the journal missed)"
            writer.execute(f"DROP TABLE {TABLE}")
            writer.execute(f"ALTER TABLE {SORTED} RENAME TO {TABLE}")
            writer.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                writer.execute("ROLLBACK")
            raise
        done = True
        return "sorted"
    finally:
        if done:
            journal.stop(writer)
        else:
            abandon(writer, journal)


def abandon(writer: Cursor, journal: RollupJournal) -> None:
    """After a failed copy or swap, or a crash's leftover at start: no journal, no SORTED."""
    journal.stop(writer)
    writer.execute(f"DROP TABLE IF EXISTS {SORTED}")


def _interrupt(copy: Copy) -> None:
    with contextlib.suppress(duckdb.Error):  # closed already, or nothing running
        copy.cursor.interrupt()


async def _settled(work: asyncio.Future[Any], nudge: Callable[[], None] = lambda: None) -> None:
    """Until `work` (on another thread) has ended, whatever it ended with, calling `nudge`
    between looks; a cancel meanwhile does not stop the wait (the thread holds a cursor)."""
    while not work.done():
        nudge()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({work}, timeout=0.05)
    if not work.cancelled():
        work.exception()  # retrieved: its error is the caller's to raise, not the loop's to log


class RollupResort:
    """Sorts `balance_rollups` again when enough rows came since the last sort (module doc).

    `run()` looks every `every` seconds while the writer has nothing queued; `run_once()`
    sorts now (tests, benches). The service starts `run()` and awaits `stop()` before it
    closes the database: a copy under way is interrupted."""

    def __init__(
        self, db: Database, *, min_rows: int = MIN_ROWS, every: float = CHECK_EVERY, max_journal: int = MAX_JOURNAL
    ) -> None:
        self.db = db
        self.min_rows = min_rows
        self.every = every
        self.max_journal = max_journal
        self.sorts = 0  # completed since start
        self.last: str | None = None  # the outcome of the latest attempt
        self.swap_seconds = 0.0  # the writer's share of the latest attempt (step 3)
        self._copy: Copy | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> str:
        started = time.monotonic()
        checkpoints = self.db.checkpoints
        if checkpoints is not None:
            checkpoints.held += 1  # DuckDB refuses them while the copy's transaction is open
        try:
            copy = await self._begun()
            try:
                await self._copied(copy)
            except BaseException:  # failed, or cancelled (stop): the journal stops, the copy goes
                await self.db.between_writes(abandon)
                raise
            swapping = time.monotonic()
            outcome = await self.db.between_writes(lambda w, j: swap(w, j, copy))
            self.swap_seconds = time.monotonic() - swapping
        finally:
            if checkpoints is not None:
                checkpoints.held -= 1
        self.last = outcome
        if outcome == "sorted":
            self.sorts += 1
            log.info(
                "balance_rollups sorted by wallet again: %d rows in %.1f s, the writer held %.0f ms",
                copy.rows,
                time.monotonic() - started,
                self.swap_seconds * 1000,
            )
        else:
            log.info("balance_rollups re-sort %s", outcome)
        return outcome

    async def _begun(self) -> Copy:
        """Step 1; cancelled meanwhile (stop), it still ends, and what it began is undone."""
        beginning = asyncio.ensure_future(self.db.between_writes(lambda w, j: begin(w, j, self.max_journal)))
        try:
            return await asyncio.shield(beginning)
        except BaseException:
            await _settled(beginning)
            if beginning.done() and not beginning.cancelled() and beginning.exception() is None:
                beginning.result().cursor.close()
                await self.db.between_writes(abandon)
            raise

    async def _copied(self, copy: Copy) -> None:
        """Step 2 on a thread of its own; interrupted when this is cancelled, and its cursor
        closed only once the thread has ended."""
        copying = asyncio.ensure_future(asyncio.to_thread(copy_sorted, copy))
        self._copy = copy
        try:
            await asyncio.shield(copying)
        except BaseException:
            # DuckDB forgets an interrupt sent between two statements: sent until the thread ends.
            await _settled(copying, lambda: _interrupt(copy))
            raise
        finally:
            self._copy = None
            if copying.done():
                copy.cursor.close()

    async def due(self) -> bool:
        return await self.db.read(lambda cur: is_due(cur, self.min_rows))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rollup-resort")

    async def _run(self) -> None:
        await self._attempt(lambda: self.db.between_writes(abandon))  # a crash's leftover copy goes first
        while True:
            await asyncio.sleep(self.every)
            await self._attempt(self._when_due)

    async def _when_due(self) -> None:
        if self.db.queue_length == 0 and await self.due():
            await self.run_once()

    async def _attempt(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except Exception:  # a full disk, a closing database: the next look tries again
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # stop(): whatever the cancel turned into
                raise
            log.warning("balance_rollups re-sort failed; trying again later", exc_info=True)

    async def stop(self) -> None:
        """Cancel the loop; a copy under way is interrupted and waited for (it holds a cursor)."""
        if self._task is None:
            return
        if self._copy is not None:
            _interrupt(self._copy)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
