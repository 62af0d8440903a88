"""A write's search rows reach search_terms in its own transaction whether or not a writer's
batch runs deferred work: through the group's shared refresh, or at once when the unit of
work has no batch (made outside the writer, or after it took the raw cursor)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import msgspec
import pytest

from service.model.registry import ENTITIES
from service.store.database import Database
from service.store.uow import UnitOfWork
from tests.factories import wallet_record

WALLETS = ENTITIES["wallets"]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "ekko.db", 2).open()
    yield database
    database.close()


def wallet(n: int, name: str) -> msgspec.Struct:
    return wallet_record(n, name=name)


def create(uow: UnitOfWork, record: msgspec.Struct) -> None:
    uow.repo(WALLETS).insert(record)
    uow.record(WALLETS, "created", record)


def terms(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return sorted(con.execute("SELECT id, text FROM search_terms WHERE entity = 'wallets'").fetchall())


def searched(n: int, name: str) -> list[tuple[str, str]]:
    """The search rows of wallet(n, name): its name (lower-cased) and its address."""
    return sorted([(str(uuid.UUID(int=n)), name.lower()), (str(uuid.UUID(int=n)), f"0x{n:040x}")])


async def test_a_grouped_write_and_one_on_the_raw_cursor_refresh_alike(db: Database) -> None:
    def grouped(uow: UnitOfWork) -> None:
        create(uow, wallet(1, "Gold Coin"))

    def raw(uow: UnitOfWork) -> None:
        uow.cursor.execute("SELECT 1")  # the unit of work drops its batch from here on
        assert uow.batch is None
        create(uow, wallet(2, "Silver Coin"))

    await db.write(grouped)
    await db.write(raw)
    assert terms(db.connection) == searched(1, "Gold Coin") + searched(2, "Silver Coin")


def test_a_unit_of_work_of_its_own_refreshes_when_sealed(db: Database) -> None:
    con = db.connection
    con.execute("BEGIN TRANSACTION")
    uow = UnitOfWork(con)
    create(uow, wallet(3, "Ωmega"))
    assert terms(con) == []  # noted, not yet written
    uow.seal()
    con.execute("COMMIT")
    assert terms(con) == searched(3, "Ωmega")
