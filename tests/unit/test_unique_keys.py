"""Unique keys in indexed columns of their own (UniqueKey.column): filled for existing rows by a
migration, enforced by DuckDB, and checked for a whole group commit without sending its rows
out one by one, through the cases DuckDB's unique indexes are touchy about in one
transaction (a key moved by an UPDATE, a key freed and taken again)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from schema.common import DeleteRequest
from schema.users import UserCreate, UserUpdate
from schema.wallets import WalletCreate, WalletUpdate
from service.model.errors import Conflict
from service.model.registry import ENTITIES
from service.model.rules import Rules, UserRules, WalletRules
from service.store.database import Database
from service.store.ddl import LATEST_VERSION, MIGRATIONS, apply_pending, drop_all
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService

WALLETS = ENTITIES["wallets"]
T0 = datetime(2024, 1, 1)


def address(n: int) -> str:
    return f"0x{n:040x}"


def make_version_3(path: Path) -> None:
    """A database as the code before unique key columns left it, with rows in it: two users
    whose emails differ only in case (the service always refused that, a hand edit did not)."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)")
    for number, description, sql in MIGRATIONS[:3]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [number, description, T0])
    user = "INSERT INTO users VALUES (?, ?, ?, 1, ?, NULL, 'user', true, 'hash')"
    con.execute(user, ["u-old", datetime(2024, 1, 1), T0, "Ada@Example.com"])
    con.execute(user, ["u-new", datetime(2024, 2, 1), T0, "ada@example.COM"])
    con.execute(user, ["u-other", datetime(2024, 3, 1), T0, "Bob@Example.com"])
    wallet = "INSERT INTO wallets VALUES (?, ?, ?, 1, 'ETH', ?, NULL, 0, 'active')"
    con.execute(wallet, ["w1", T0, T0, address(1).upper().replace("0X", "0x")])
    con.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "ekko.db", pool_size=2).open()
    yield database
    database.close()


def service(db: Database, name: str) -> EntityService:
    rules: Rules = {"users": UserRules(bcrypt_rounds=4), "wallets": WalletRules()}[name]
    return EntityService(ENTITIES[name], db, RecordCache(1000), rules, after_commit=lambda changes: None)


def keys(db: Database, table: str, column: str) -> dict[str, Any]:
    return dict(db.connection.execute(f"SELECT id, {column} FROM {table}").fetchall())


async def in_one_group(db: Database, *calls: Coroutine[Any, Any, Any]) -> tuple[list[Any], int]:
    """Outcomes of the calls, queued behind a held writer so they run as one group, and
    the number of transactions they took."""
    started, release = threading.Event(), threading.Event()
    held = asyncio.create_task(db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)
    tasks = [asyncio.create_task(call) for call in calls]
    async with asyncio.timeout(30):
        while db.queue_length < len(calls):  # creates of users hash their password first
            await asyncio.sleep(0.005)
    commits = db.group_commits
    release.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True), db.group_commits - commits


def names(results: list[Any]) -> list[str]:
    return [type(r).__name__ for r in results]


async def test_a_version_3_database_gets_its_keys_filled_and_the_oldest_of_legacy_duplicates_keeps_it(
    tmp_path: Path,
) -> None:
    make_version_3(tmp_path / "ekko.db")
    db = Database(tmp_path / "ekko.db", pool_size=2).open()
    try:
        assert db.schema_version == LATEST_VERSION
        assert keys(db, "users", "unique_email") == {
            "u-old": "ada@example.com",
            "u-new": None,  # the newer duplicate: still stored and readable, holds no key
            "u-other": "bob@example.com",
        }
        assert keys(db, "wallets", "unique_blockchain_symbol_address") == {"w1": "3:eth" + address(1)}
        users, wallets = service(db, "users"), service(db, "wallets")
        assert (await users.get_encoded("u-new")).count(b"ada@example.COM") == 1
        with pytest.raises(Conflict):
            await users.create(UserCreate(email="ADA@example.com", password="long enough secret"))
        with pytest.raises(Conflict):  # the duplicate cannot take the key another row holds
            await users.update(UserUpdate(id="u-new", email="ada@EXAMPLE.com"))
        await users.update(UserUpdate(id="u-new", full_name="Ada Two"))  # its other fields change freely
        await users.update(UserUpdate(id="u-new", email="ada.two@example.com"))  # or a free key
        assert keys(db, "users", "unique_email")["u-new"] == "ada.two@example.com"
        with pytest.raises(Conflict):
            await wallets.create(WalletCreate(blockchain_symbol="eth", address=address(1)))
        # DuckDB itself refuses a second holder of a key, whatever writes it.
        with pytest.raises(duckdb.ConstraintException):
            db.connection.execute("UPDATE users SET unique_email = 'ada@example.com' WHERE id = 'u-other'")
    finally:
        db.close()


async def test_keys_stay_out_of_records(db: Database) -> None:
    record = await service(db, "wallets").create(WalletCreate(blockchain_symbol="ETH", address=address(7)))
    encoded = await service(db, "wallets").get_encoded(record.id)
    assert b"unique_" not in encoded
    assert keys(db, "wallets", "unique_blockchain_symbol_address") == {record.id: "3:eth" + address(7)}


async def test_a_group_refuses_the_second_of_two_creates_of_one_key_and_keeps_the_rest(db: Database) -> None:
    wallets = service(db, "wallets")
    results, transactions = await in_one_group(
        db,
        *(wallets.create(WalletCreate(blockchain_symbol="ETH", address=address(n))) for n in range(20)),
        wallets.create(WalletCreate(blockchain_symbol="eth", address=address(3).upper().replace("0X", "0x"))),
        wallets.create(WalletCreate(blockchain_symbol="AVAX", address=address(3))),  # another chain: free
    )
    assert names(results) == ["Wallet"] * 20 + ["Conflict", "Wallet"]
    assert transactions == 1, "a refusal before writing is answered without rerunning the group"
    assert len(keys(db, "wallets", "id")) == 21


async def test_a_key_moved_by_an_update_is_free_for_a_create_in_the_same_group(db: Database) -> None:
    wallets = service(db, "wallets")
    moved = await wallets.create(WalletCreate(blockchain_symbol="ETH", address=address(1)))
    results, transactions = await in_one_group(
        db,
        wallets.update(WalletUpdate(id=moved.id, address=address(2))),
        wallets.create(WalletCreate(blockchain_symbol="ETH", address=address(1))),  # freed just now
        wallets.create(WalletCreate(blockchain_symbol="ETH", address=address(2))),  # taken just now
    )
    assert (names(results), transactions) == (["Wallet", "Wallet", "Conflict"], 1)
    stored = keys(db, "wallets", "unique_blockchain_symbol_address")
    assert sorted(stored.values()) == ["3:eth" + address(1), "3:eth" + address(2)]
    assert stored[moved.id] == "3:eth" + address(2)


async def test_a_deleted_users_email_can_be_taken_in_the_same_group(db: Database) -> None:
    users = service(db, "users")
    gone = await users.create(UserCreate(email="ada@example.com", password="long enough secret"))
    results, transactions = await in_one_group(
        db,
        users.delete(DeleteRequest(id=gone.id)),
        users.create(UserCreate(email="Ada@Example.com", password="long enough secret")),
        users.create(UserCreate(email="ADA@example.com", password="long enough secret")),
    )
    # The creates queue in whichever order their passwords finish hashing: one of them wins.
    assert (names(results)[0], sorted(names(results)[1:]), transactions) == ("DeleteReply", ["Conflict", "User"], 1)
    assert list(keys(db, "users", "unique_email").values()) == ["ada@example.com"]


async def test_a_key_checked_in_a_group_does_not_flush_its_held_back_rows(db: Database) -> None:
    """The point of the key columns inside a group commit: creates stay one bulk insert."""
    wallets = service(db, "wallets")
    statements: list[str] = []
    flush = db._batch.flush

    def counting_flush(cur: Any, table: str | None = None) -> None:
        statements.append(table or "all")
        flush(cur, table)

    db._batch.flush = counting_flush  # type: ignore[method-assign]
    results, transactions = await in_one_group(
        db, *(wallets.create(WalletCreate(blockchain_symbol="ETH", address=address(n))) for n in range(30))
    )
    assert (names(results), transactions) == (["Wallet"] * 30, 1)
    assert "wallets" not in statements, "a uniqueness check sent the group's rows out early"


def test_a_backup_made_at_version_3_restores_with_its_keys_filled_in_one_transaction(tmp_path: Path) -> None:
    """What restore does (service/migration/backups.py): drop, IMPORT, migrate, in one transaction."""
    make_version_3(tmp_path / "old.db")
    old = duckdb.connect(str(tmp_path / "old.db"))
    old.execute(f"EXPORT DATABASE '{tmp_path / 'backup'}' (FORMAT parquet)")
    old.close()
    db = Database(tmp_path / "ekko.db", pool_size=2).open()
    try:

        def restore(cur: duckdb.DuckDBPyConnection) -> int:
            drop_all(cur)
            cur.execute(f"IMPORT DATABASE '{tmp_path / 'backup'}'")
            return apply_pending(cur)

        assert db.transaction(restore) == LATEST_VERSION
        assert keys(db, "users", "unique_email")["u-old"] == "ada@example.com"
        with pytest.raises(duckdb.ConstraintException):
            db.connection.execute("UPDATE users SET unique_email = 'ada@example.com' WHERE id = 'u-other'")
    finally:
        db.close()
