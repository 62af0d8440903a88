"""service.store.database: one process per DuckDB file, and a pool whose stats tell the truth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from service.model.errors import Conflict
from service.store.database import Database, PoolStats
from service.store.uow import UnitOfWork

ROOT = Path(__file__).resolve().parents[2]

OPEN_FROM_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from service.store.database import connect
from service.model.errors import DatabaseLocked
try:
    connect(Path(sys.argv[1])).close()
except DatabaseLocked as exc:
    print(exc)
    sys.exit(3)
print("opened")
"""


def open_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_FROM_ANOTHER_PROCESS, str(path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def db(tmp_path: Path):
    database = Database(tmp_path / "data" / "ekko.db", pool_size=2).open()
    yield database
    database.close()


def test_a_second_process_is_told_the_file_is_locked_and_by_whom(db: Database) -> None:
    result = open_elsewhere(db.path)
    assert result.returncode == 3, result.stderr
    message = result.stdout.strip()
    assert message.startswith(f"{db.path} is in use by another process (process {os.getpid()})")
    assert "one process per file" in message


def test_the_file_is_free_again_once_closed(db: Database) -> None:
    db.close()
    result = open_elsewhere(db.path)
    assert (result.returncode, result.stdout.strip()) == (0, "opened"), result.stderr


async def stats_reach(db: Database, expected: PoolStats) -> None:
    while db.stats() != expected:
        await asyncio.sleep(0.005)


async def test_pool_stats_show_cursors_in_use_and_callers_waiting(db: Database) -> None:
    assert db.stats() == PoolStats(size=2, in_use=0, waiting=0)
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked_read(cursor: duckdb.DuckDBPyConnection) -> int:
        started.release()
        assert release.wait(10)
        return cursor.execute("SELECT 42").fetchone()[0]

    reads = [asyncio.create_task(db.read(blocked_read)) for _ in range(3)]
    await asyncio.wait_for(stats_reach(db, PoolStats(size=2, in_use=2, waiting=1)), 5)
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    assert not started.acquire(timeout=0.05), "a third read ran without a free cursor"
    release.set()
    assert await asyncio.wait_for(asyncio.gather(*reads), 10) == [42, 42, 42]
    stats = db.stats()
    assert (stats.size, stats.in_use, stats.waiting, stats.waits) == (2, 0, 0, 1)  # the third read waited
    assert stats.wait_seconds >= 0.05  # at least as long as the check above kept it waiting


async def test_a_failed_write_rolls_back_and_the_writer_keeps_working(db: Database) -> None:
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))

    def insert_then_fail(uow: UnitOfWork) -> None:
        uow.cursor.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.write(insert_then_fail)
    await db.write(lambda uow: uow.cursor.execute("INSERT INTO t VALUES (2)"))
    assert await db.read(lambda cur: cur.execute("SELECT n FROM t").fetchall()) == [(2,)]


async def test_a_rule_broken_inside_a_group_fails_only_that_write(db: Database) -> None:
    """Writes queued together share a transaction; one that raises a ServiceError gets it,
    the others commit, and a later write in the group sees the earlier ones."""
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    started, release = threading.Event(), threading.Event()
    await_block = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))  # holds the writer
    assert await asyncio.to_thread(started.wait, 10)

    def insert(n: int):
        def fn(uow: UnitOfWork) -> int:
            cur = uow.cursor
            if cur.execute("SELECT count(*) FROM t WHERE n = ?", [n]).fetchall()[0][0]:
                raise Conflict(f"{n} exists")
            cur.execute("INSERT INTO t VALUES (?)", [n])
            return n

        return fn

    writes = [asyncio.create_task(db.write(insert(n))) for n in (1, 2, 1, 3)]
    await asyncio.sleep(0.05)  # all four queue up behind the blocked write
    groups_before = db.group_commits
    release.set()
    await await_block
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert outcomes[:2] == [1, 2] and outcomes[3] == 3
    assert isinstance(outcomes[2], Conflict), outcomes[2]
    assert await db.read(lambda cur: cur.execute("SELECT n FROM t ORDER BY n").fetchall()) == [(1,), (2,), (3,)]
    assert db.group_commits - groups_before == 2, "one failed attempt, then one commit for the other three"


async def test_a_write_outside_the_batch_sees_rows_held_back_before_it(db: Database) -> None:
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n INTEGER)"))
    started, release = threading.Event(), threading.Event()
    blocked = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)
    held = asyncio.create_task(db.write(lambda uow: uow.batch.add("t", ("n",), [7])))
    counted = asyncio.create_task(db.write(lambda uow: uow.cursor.execute("SELECT count(*) FROM t").fetchall()[0][0]))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(blocked, held)
    assert await counted == 1


async def test_a_write_that_asks_to_run_alone_gets_its_own_transaction_and_runs_once(db: Database) -> None:
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    started, release = threading.Event(), threading.Event()
    blocked = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)
    runs = []

    def heavy(uow: UnitOfWork) -> None:
        runs.append(1)
        uow.cursor.execute("INSERT INTO t VALUES (100)")

    def refused(uow: UnitOfWork) -> None:
        uow.cursor.execute("INSERT INTO t VALUES (3)")  # raw SQL, then refused: the group reruns without it
        raise Conflict("no")

    queued = [
        asyncio.create_task(db.write(lambda uow: uow.cursor.execute("INSERT INTO t VALUES (1)"))),
        asyncio.create_task(db.write(heavy, alone=True)),
        asyncio.create_task(db.write(refused)),
        asyncio.create_task(db.write(lambda uow: uow.cursor.execute("INSERT INTO t VALUES (2)"))),
    ]
    await asyncio.sleep(0.05)
    groups = db.group_commits
    release.set()
    await blocked
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert isinstance(outcomes[2], Conflict) and runs == [1], "the refused write did not rerun the heavy one"
    assert db.group_commits - groups == 4, "[1], [heavy] alone, [refused, 2] failing once, then [2]"
    assert await db.read(lambda cur: cur.execute("SELECT n FROM t ORDER BY n").fetchall()) == [(1,), (2,), (100,)]


async def test_what_a_group_learned_about_ids_does_not_outlive_its_transaction(db: Database) -> None:
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (id VARCHAR PRIMARY KEY)"))
    learned = await db.write(lambda uow: uow.batch.exists("t", "x"), lookups=[("t", "x")])
    assert learned is False
    await db.read(lambda cur: cur.execute("INSERT INTO t VALUES ('x')"))  # a change the writer did not see
    assert await db.write(lambda uow: uow.batch.exists("t", "x")) is None, "unknown: must ask"


async def test_a_write_that_takes_the_cursor_sees_held_back_rows_and_the_group_forgets_known_ids(
    db: Database,
) -> None:
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (id VARCHAR PRIMARY KEY)"))
    started, release = threading.Event(), threading.Event()
    blocked = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)

    def raw(uow: UnitOfWork) -> tuple[int, bool]:
        cur = uow.cursor
        (seen,) = cur.execute("SELECT count(*) FROM t").fetchall()[0]
        cur.execute("INSERT INTO t VALUES ('b')")
        return seen, uow.batch is None

    queued = [
        asyncio.create_task(db.write(lambda uow: uow.batch.add("t", ("id",), ["a"], "a"), lookups=[("t", "b")])),
        asyncio.create_task(db.write(raw)),
        asyncio.create_task(db.write(lambda uow: uow.batch.exists("t", "b"))),
    ]
    await asyncio.sleep(0.05)
    groups = db.group_commits
    release.set()
    await blocked
    _, (seen, unbatched), known = await asyncio.gather(*queued)
    assert db.group_commits - groups == 1, "the three ran as one group"
    assert seen == 1, "the held-back row was sent before the raw statement"
    assert unbatched, "after taking the cursor the unit of work holds nothing back"
    assert known is None, "prefetched as absent, then written by raw SQL: the writer must ask again"


async def test_refusals_before_any_write_are_answered_without_rerunning_the_group(db: Database) -> None:
    """Clients retrying creates with their own ids: each retry is refused, and the group
    still commits once (it used to roll back and rerun once per refusal)."""
    await db.write(lambda uow: uow.cursor.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    started, release = threading.Event(), threading.Event()
    blocked = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)
    runs: list[int] = []

    def create(n: int, *, refuse: bool = False, after_writing: bool = False):
        def fn(uow: UnitOfWork) -> int:
            runs.append(n)
            if refuse and not after_writing:
                raise Conflict(f"{n} exists")
            uow.batch.add("t", ("n",), [n])
            if after_writing:
                raise Conflict(f"{n} changed its mind")
            return n

        return fn

    fns = [create(n) for n in range(50)] + [create(n, refuse=True) for n in range(50)]
    fns.insert(25, create(999, refuse=True, after_writing=True))
    writes = [asyncio.create_task(db.write(fn)) for fn in fns]
    await asyncio.sleep(0.05)
    groups = db.group_commits
    release.set()
    await blocked
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert [o for o in outcomes if not isinstance(o, Conflict)] == list(range(50))
    assert sum(isinstance(o, Conflict) for o in outcomes) == 51
    assert db.group_commits - groups == 2, "one rollback for the write that refused after writing, one commit"
    assert len(runs) == 101 + 25, "only the 25 writes before it ran twice"
    rows = await db.read(lambda cur: cur.execute("SELECT count(*), max(n) FROM t").fetchall())
    assert rows == [(50, 49)]


async def test_a_write_after_close_fails_at_once(tmp_path: Path) -> None:
    database = Database(tmp_path / "x.db", pool_size=1).open()
    database.close()
    with pytest.raises(RuntimeError, match="not open"):
        await database.write(lambda uow: None)
