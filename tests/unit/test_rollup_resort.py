"""balance_rollups sorted by wallet again beside the writer (service.store.rollup_resort):
nothing lost or changed, writes made while it copies reach the sorted table, a write the
journal misses keeps the live table, and a wallet's history then reads a row group or two."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from service.store.balances import BalanceStore, rebuild
from service.store.database import Cursor, Database
from service.store.rollup_journal import RollupJournal
from service.store.rollup_resort import SORTED, RollupResort, begin, copy_sorted, is_due, swap, unsorted_rows
from tests.balance_world import World, derived_tables
from tests.sync_helpers import eventually

WALLET = "00000007-0000-4000-8000-000000000000"
HISTORY = (
    "SELECT start, first FROM balance_rollups WHERE wallet_id = ? AND interval = '1d'"
    " AND start >= TIMESTAMP '2025-11-30' AND start < TIMESTAMP '2026-11-30' ORDER BY start"
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """An open database of its own (migrated), closed after the test."""
    database = Database(tmp_path / "resort.db", 2).open()
    yield database
    database.close()


def fingerprint(cur: Cursor) -> tuple[int, int]:
    """Row count and a sum of every row's hash."""
    row = cur.execute(
        "SELECT count(*), sum(hash(wallet_id, interval, start, first, last, min, max, count, last_fiat_value,"
        " first_at, first_id, last_at, last_id)) FROM balance_rollups"
    ).fetchall()[0]
    return int(row[0]), int(row[1] or 0)


def in_arrival_order(cur: Cursor, wallets: int, rows: int) -> None:
    """`rows` balance rows over a year, the wallets taking turns; roll-ups rewritten by
    interval start, as months of ingest append them."""
    cur.execute(
        "INSERT INTO wallets SELECT printf('%08d-0000-4000-8000-000000000000', i), now(), now(), 1, 'ETH',"
        " printf('0x%040d', i), NULL, 0, 'active', printf('ETH:0x%040d', i) FROM range(?) t(i)",
        [wallets],
    )
    cur.execute(
        "INSERT INTO wallet_balances SELECT uuid()::VARCHAR, now(), now(), 1,"
        " printf('%08d-0000-4000-8000-000000000000', i % ?),"
        " TIMESTAMP '2025-11-30' + to_seconds((i * 31536000 // ?)::BIGINT), i::DECIMAL(38,18), NULL, NULL"
        " FROM range(?) t(i)",
        [wallets, rows, rows],
    )
    rebuild(cur)
    cur.execute("CREATE TEMP TABLE arrived AS SELECT * FROM balance_rollups ORDER BY start, wallet_id, interval")
    cur.execute("DELETE FROM balance_rollups")
    cur.execute("INSERT INTO balance_rollups SELECT * FROM arrived")
    cur.execute("DROP TABLE arrived")
    cur.execute("COMMENT ON TABLE balance_rollups IS ''")  # as a database from before decision 55 has it
    cur.execute("CHECKPOINT")


def row_groups_read(cur: Cursor) -> tuple[int, int]:
    plan = cur.execute("EXPLAIN ANALYZE " + HISTORY, [WALLET]).fetchall()[0][1]
    found = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    assert found is not None, plan
    return int(found.group(1)), int(found.group(2))


async def test_a_resort_keeps_every_rollup_and_a_wallets_history_reads_one_row_group(db: Database) -> None:
    cur = db.connection.cursor()
    in_arrival_order(cur, 5_000, 150_000)  # ~390k roll-ups: 4 row groups
    before, history = fingerprint(cur), cur.execute(HISTORY, [WALLET]).fetchall()
    scanned, groups = row_groups_read(cur)
    assert groups >= 4 and scanned == groups  # every row group holds every wallet
    rows, unsorted = unsorted_rows(cur)
    assert unsorted == rows and is_due(cur, 100_000) and not is_due(cur, rows + 1)

    assert await RollupResort(db).run_once() == "sorted"

    assert fingerprint(cur) == before and cur.execute(HISTORY, [WALLET]).fetchall() == history
    assert row_groups_read(cur)[0] <= 2
    assert unsorted_rows(cur) == (rows, 0) and not is_due(cur, 1)
    with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):  # the primary key came along
        cur.execute("INSERT INTO balance_rollups SELECT * FROM balance_rollups LIMIT 1")
    assert _no_copy_left(cur)


async def _groups(world: World, count: int) -> None:
    for _ in range(count):
        await asyncio.gather(*(op() for op in world.operations()))


async def _world(db: Database, seed: int, wallets: int, groups: int) -> World:
    """Wallets and `groups` groups of random writes through the services (test_portfolio_changes)."""
    world = World(db, random.Random(seed))
    for _ in range(wallets):
        await world.new_wallet()
    await _groups(world, groups)
    return world


def _as_rebuilt(db: Database) -> None:
    """The roll-ups and latest rows are what a rebuild from the balance rows derives."""
    cur = db.connection.cursor()
    kept = derived_tables(cur)
    db.transaction(rebuild)
    assert derived_tables(cur) == kept


def _no_copy_left(cur: Cursor) -> bool:
    return not cur.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [SORTED]).fetchall()


async def test_writes_made_while_it_copies_reach_the_sorted_table(db: Database) -> None:
    """Creates, updates, deletes, ingests, chain changes and wallet deletes, before the copy
    reads its snapshot and while it copies: the swapped-in table is what a rebuild derives."""
    world = await _world(db, 23, 6, 15)
    copy = await db.between_writes(begin)
    await _groups(world, 8)  # after the snapshot, before the copy reads it
    copying = asyncio.ensure_future(asyncio.to_thread(copy_sorted, copy))
    await _groups(world, 8)  # while it copies, or after
    await copying
    await _groups(world, 4)  # after the copy, before the swap
    assert await db.between_writes(lambda w, j: swap(w, j, copy)) == "sorted"
    assert len(derived_tables(db.connection.cursor())[0]) > 100
    _as_rebuilt(db)
    await _groups(world, 5)  # the new table takes writes as the old did
    _as_rebuilt(db)


async def test_a_write_the_journal_misses_keeps_the_live_table(db: Database) -> None:
    world = await _world(db, 5, 4, 10)
    copy = await db.between_writes(begin)

    def forget(writer: Cursor, journal: RollupJournal) -> None:
        journal.active = False  # as if a write path did not report its roll-ups

    await db.between_writes(forget)
    for wallet in list(world.chains)[:3]:
        await world.create(wallet)
    await asyncio.to_thread(copy_sorted, copy)
    cur = db.connection.cursor()
    live = fingerprint(cur)
    outcome = await db.between_writes(lambda w, j: swap(w, j, copy))
    assert outcome.startswith("gave up") and "differs" in outcome
    assert fingerprint(cur) == live
    assert _no_copy_left(cur)


async def test_raw_sql_during_the_copy_makes_it_give_up(db: Database) -> None:
    """A migration, restore or reset writes through the raw cursor: roll-ups the journal cannot
    name may have changed, so the copy is dropped and the table stays as it is."""
    await _world(db, 3, 3, 5)
    copy = await db.between_writes(begin)
    await db.write(lambda uow: uow.cursor.execute("SELECT 1"))
    await asyncio.to_thread(copy_sorted, copy)
    cur = db.connection.cursor()
    live = fingerprint(cur)
    assert "journal cannot name" in await db.between_writes(lambda w, j: swap(w, j, copy))
    assert fingerprint(cur) == live
    # the next attempt starts afresh
    assert await RollupResort(db).run_once() == "sorted"
    assert fingerprint(cur) == live


async def test_the_loop_sorts_when_due_and_stops_cleanly(db: Database) -> None:
    cur = db.connection.cursor()
    in_arrival_order(cur, 2_000, 60_000)
    before = fingerprint(cur)
    resort = RollupResort(db, min_rows=1_000, every=0.05)
    resort.start()

    async def sorted_once() -> bool:
        return resort.sorts > 0

    await eventually(sorted_once, timeout=30, what="a re-sort")
    assert resort.sorts == 1 and unsorted_rows(cur)[1] == 0
    cutoff = datetime(2026, 12, 1)  # a year of new intervals, then a stop while it may be copying again
    cur.execute(
        "INSERT INTO balance_rollups SELECT wallet_id, interval, start + INTERVAL 400 DAY, first, last, min, max,"
        " count, last_fiat_value, first_at, first_id, last_at, last_id FROM balance_rollups WHERE start < ?",
        [cutoff],
    )
    grown = fingerprint(cur)
    await asyncio.sleep(0.1)
    await resort.stop()
    assert fingerprint(cur) == grown != before
    assert _no_copy_left(cur)


async def test_a_wallet_deleted_while_it_copies_leaves_no_rollups(db: Database) -> None:
    world = await _world(db, 9, 5, 0)
    for wallet in world.chains:
        for _ in range(5):
            await world.create(wallet)
    copy = await db.between_writes(begin)
    gone = next(iter(world.chains))
    await world.delete_wallet(gone)
    await asyncio.to_thread(copy_sorted, copy)
    assert await db.between_writes(lambda w, j: swap(w, j, copy)) == "sorted"
    assert not db.connection.execute("SELECT 1 FROM balance_rollups WHERE wallet_id = ?", [gone]).fetchall()
    _as_rebuilt(db)


async def test_a_journal_past_its_limit_stops_growing_and_the_swap_gives_up(db: Database) -> None:
    world = await _world(db, 13, 4, 3)
    copy = await db.between_writes(lambda w, j: begin(w, j, 5))
    await _groups(world, 6)
    held = await db.between_writes(
        lambda w, j: (j.active, int(w.execute("SELECT count(*) FROM rollup_journal").fetchall()[0][0]))
    )
    assert held[0] is False and held[1] <= 5 + 3 * 1_100  # stopped after the write that passed the limit
    await asyncio.to_thread(copy_sorted, copy)
    cur = db.connection.cursor()
    live = fingerprint(cur)
    assert "more than 5 roll-ups" in await db.between_writes(lambda w, j: swap(w, j, copy))
    assert fingerprint(cur) == live and _no_copy_left(cur)


async def test_a_failed_copy_reports_its_cause_and_leaves_nothing_behind(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await _world(db, 17, 3, 4)
    cur = db.connection.cursor()
    live = fingerprint(cur)

    def full_disk(cur: Cursor, table: str = "") -> None:
        raise duckdb.IOException("No space left on device")

    monkeypatch.setattr("service.store.rollup_resort.mark_clustered", full_disk)
    with pytest.raises(duckdb.IOException, match="No space left"):
        await RollupResort(db).run_once()
    assert fingerprint(cur) == live and _no_copy_left(cur)
    assert not await db.between_writes(lambda w, j: j.active)
    assert db.checkpoints is not None and db.checkpoints.held == 0
    await _groups(world, 2)  # writes go on, unjournaled
    _as_rebuilt(db)


async def test_a_stop_while_it_copies_interrupts_the_copy(db: Database) -> None:
    cur = db.connection.cursor()
    in_arrival_order(cur, 5_000, 150_000)
    live = fingerprint(cur)
    resort = RollupResort(db, min_rows=1_000, every=0.01)
    resort.start()

    async def copying() -> bool:
        return resort._copy is not None

    await eventually(copying, timeout=5, what="a copy under way")
    await resort.stop()
    assert resort.sorts == 0 and resort._copy is None
    assert fingerprint(cur) == live and _no_copy_left(cur)
    assert not await db.between_writes(lambda w, j: j.active)
    assert db.checkpoints is not None and db.checkpoints.held == 0


async def test_a_wallets_rollups_dropped_while_it_copies_go_from_the_copy_too(db: Database) -> None:
    """The whole-wallet entry forget_wallet writes: its roll-ups leave the copy too."""
    world = await _world(db, 19, 4, 0)
    wallet = next(iter(world.chains))
    for _ in range(6):
        await world.create(wallet)
    copy = await db.between_writes(begin)
    await db.write(lambda uow: uow.store(BalanceStore).forget_wallet(wallet, world.chains[wallet]))
    await asyncio.to_thread(copy_sorted, copy)
    assert await db.between_writes(lambda w, j: swap(w, j, copy)) == "sorted"
    assert not db.connection.execute("SELECT 1 FROM balance_rollups WHERE wallet_id = ?", [wallet]).fetchall()
