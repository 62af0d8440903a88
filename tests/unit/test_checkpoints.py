"""service.store.checkpoints: a burst of writes commits without DuckDB's checkpoints, and the
writer folds the WAL into the file once writes pause."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from service.store.checkpoints import IDLE_SECONDS
from service.store.database import Database
from service.store.uow import UnitOfWork


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "ekko.db", pool_size=2).open()
    yield database
    database.close()


def wal_bytes(db: Database) -> int:
    wal = db.path.with_name(db.path.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def fill(uow: UnitOfWork, rows: int = 20_000) -> None:
    uow.cursor.execute("INSERT INTO t SELECT i, repeat('x', 100) FROM range(?) r(i)", [rows])


async def test_the_threshold_of_a_checkpoint_inside_a_commit_is_raised(db: Database) -> None:
    setting = await db.read(lambda cur: cur.execute("SELECT current_setting('checkpoint_threshold')").fetchall())
    assert setting[0][0] == "256.0 MiB"


async def test_a_pause_after_writes_folds_the_wal_into_the_file(db: Database) -> None:
    assert db.checkpoints is not None
    db.checkpoints.idle_wal = 1  # any WAL at all is worth folding here
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n BIGINT, s VARCHAR)"))
    for _ in range(3):
        await db.write(fill)
    assert wal_bytes(db) > 1_000_000  # three commits of ~2 MB, none of them checkpointed
    deadline = time.monotonic() + 30
    while db.checkpoints.checkpoints == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert db.checkpoints.checkpoints == 1
    assert wal_bytes(db) < 100_000
    # the writer goes on after it, and nothing written before is lost
    await db.write(fill)
    assert await db.read(lambda cur: cur.execute("SELECT count(*) FROM t").fetchall()) == [(80_000,)]


async def test_no_checkpoint_below_the_idle_size(db: Database) -> None:
    assert db.checkpoints is not None
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n BIGINT, s VARCHAR)"))
    await db.write(fill)
    await asyncio.sleep(IDLE_SECONDS * 3)
    assert db.checkpoints.checkpoints == 0
    assert wal_bytes(db) > 1_000_000
