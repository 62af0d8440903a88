"""Repository and DDL against a real DuckDB file (no NATS)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import msgspec
import pytest

from schema.common import encode
from service.model.registry import ENTITIES, EntitySpec, UniqueKey
from service.store.database import connect
from service.store.ddl import LATEST_VERSION, MIGRATIONS, apply_migrations
from service.store.outbox import Change, OutboxRepository
from service.store.repository import AnyOf, Condition, ListQuery, Repository, SortKey
from service.store.write_batch import WriteBatch
from tests.support import like_matches, python_sorted

WALLETS = ENTITIES["wallets"]
USERS = ENTITIES["users"]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "data" / "ekko.db")
    apply_migrations(connection)
    yield connection
    connection.close()


def wallet(n: int, **fields: object) -> msgspec.Struct:
    at = T0 + timedelta(minutes=n)
    values = {
        "id": str(uuid.UUID(int=n)),
        "created_at": at,
        "updated_at": at,
        "version": 1,
        "blockchain_symbol": "ETH",
        "address": f"0x{n:040x}",
        "balance": Decimal(n % 3).quantize(Decimal("0.00000001")),
        "status": "active",
    }
    return WALLETS.record(**{**values, **fields})


def test_migrations_run_once_and_record_the_version(con: duckdb.DuckDBPyConnection) -> None:
    assert apply_migrations(con) == LATEST_VERSION
    assert con.execute("SELECT max(version), count(*) FROM schema_version").fetchone() == (
        LATEST_VERSION,
        len(MIGRATIONS),
    )
    assert apply_migrations(con) == LATEST_VERSION  # a second run applies nothing
    assert con.execute("SELECT count(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)


@pytest.mark.parametrize("spec", ENTITIES.values(), ids=list(ENTITIES))
def test_the_table_has_exactly_the_record_columns_plus_the_secret_and_key_ones(
    spec: EntitySpec, con: duckdb.DuckDBPyConnection
) -> None:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_name = ? ORDER BY ordinal_position",
        [spec.name],
    ).fetchall()
    keys = [key.column for key in spec.unique]
    assert [r[0] for r in rows] == [c.name for c in spec.columns] + list(spec.secret_columns) + keys
    declared = {name: (kind, nullable) for name, kind, nullable in rows}
    for column in spec.columns:
        assert declared[column.name] == (column.sql_type, "YES" if column.nullable else "NO"), column.name


def test_a_row_can_be_inserted_read_updated_and_deleted(con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    record = wallet(1, name="main", balance=Decimal("12345678.12345678"))
    repo.insert(record)
    assert repo.get(record.id) == record
    assert repo.exists(record.id) and repo.count() == 1
    changed = msgspec.structs.replace(record, name=None, status="frozen", version=2, updated_at=T0 + timedelta(days=1))
    repo.update(changed, ["name", "status"])
    assert repo.get(record.id) == changed
    repo.delete(record.id)
    assert repo.get(record.id) is None and not repo.exists(record.id) and repo.count() == 0


def test_an_update_writes_only_the_changed_columns(con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    record = wallet(1, name="main")
    repo.insert(record)
    stale_name = msgspec.structs.replace(record, name="ignored", status="frozen", version=2)
    repo.update(stale_name, ["status"])
    stored = repo.get(record.id)
    assert (stored.name, stored.status, stored.version) == ("main", "frozen", 2)


def test_secret_columns_are_stored_but_never_part_of_the_record(con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(USERS, con)
    user = USERS.record(id="u1", created_at=T0, updated_at=T0, version=1, email="Ada@Example.com")
    repo.insert(user, {"password_hash": "$2b$04$hash"})
    assert repo.get("u1") == user and "password_hash" not in msgspec.structs.asdict(repo.get("u1"))
    assert repo.secret("password_hash", "email", "ada@example.COM") == (user, "$2b$04$hash")
    repo.update(user, [], {"password_hash": "$2b$04$other"})
    assert repo.secret("password_hash", "email", "ada@example.com")[1] == "$2b$04$other"
    assert repo.secret("password_hash", "email", "nobody@example.com") is None


def test_duplicates_are_found_case_insensitively_except_for_the_row_itself(con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    repo.insert(wallet(1, address="0x" + "ab" * 20))
    key = UniqueKey(("blockchain_symbol", "address"), "taken")
    same = {"blockchain_symbol": "eth", "address": "0x" + "AB" * 20}
    assert repo.find_duplicate(key, same, None) == wallet(1).id
    assert repo.find_duplicate(key, same, wallet(1).id) is None
    assert repo.find_duplicate(key, {**same, "blockchain_symbol": "AVAX"}, None) is None


def test_children_are_found_by_their_foreign_key(con: duckdb.DuckDBPyConnection) -> None:
    Repository(WALLETS, con).insert(wallet(1))
    balances = Repository(ENTITIES["wallet_balances"], con)
    for n in (2, 3):
        balances.insert(
            ENTITIES["wallet_balances"].record(
                id=f"b{n}",
                created_at=T0,
                updated_at=T0,
                version=1,
                wallet_id=wallet(1).id,
                timestamp=T0,
                balance=Decimal(n),
            )
        )
    assert balances.ids_where("wallet_id", wallet(1).id) == ["b2", "b3"]
    assert balances.ids_where("wallet_id", "nobody") == []
    with pytest.raises(KeyError):
        balances.ids_where("wallet_id; DROP TABLE wallets", "x")


def keyset_pages(repo: Repository, sort: tuple[SortKey, ...], limit: int, *conditions: Condition) -> list[list[str]]:
    pages, after = [], None
    while True:
        rows = repo.list(ListQuery(conditions, sort, limit, after))
        if not rows:
            return pages
        pages.append([r.id for r in rows])
        after = tuple(getattr(rows[-1], k.column) for k in sort)
        after = tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in after)


@pytest.mark.parametrize(
    "sort",
    [
        (SortKey("id"),),
        (SortKey("balance", True), SortKey("id")),
        (SortKey("balance"), SortKey("created_at", True), SortKey("id")),
        (SortKey("status"), SortKey("id", True)),
    ],
)
def test_keyset_pages_return_every_row_once_in_order(sort: tuple[SortKey, ...], con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    records = [wallet(n) for n in range(1, 12)]
    for record in records:
        repo.insert(record)
    pages = keyset_pages(repo, sort, 4)
    assert [len(p) for p in pages] == [4, 4, 3]
    ids = [i for p in pages for i in p]
    assert ids == [r.id for r in repo.list(ListQuery((), sort, 100))]
    expected = records
    for key in reversed(sort):  # stable sorts, least significant key first
        expected = sorted(expected, key=lambda r: getattr(r, key.column), reverse=key.descending)
    assert ids == [r.id for r in expected]


def test_conditions_filter_the_rows_and_bind_every_value(con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    for n in range(1, 7):
        repo.insert(wallet(n, name=None if n % 2 else f"Wallet {n}"))
    listed = repo.list(
        ListQuery((Condition("name", "contains", "WALLET"), Condition("balance", "gte", 1)), (SortKey("id"),), 100)
    )
    assert [r.name for r in listed] == ["Wallet 2", "Wallet 4"]
    nulls = repo.list(ListQuery((Condition("name", "is_null", True),), (SortKey("id"),), 100))
    assert len(nulls) == 3
    injected = repo.list(ListQuery((Condition("status", "eq", "x' OR '1'='1"),), (SortKey("id"),), 100))
    assert injected == [] and repo.count() == 6


NAMES = [None, "b", "a", None, "a", "B", "a", None, "c", "b", None, "a", "_a", "%", "a\\b", "Ab", "é", "É", "z"]


@pytest.fixture
def ties(con: duckdb.DuckDBPyConnection) -> list[msgspec.Struct]:
    """Wallets whose names tie, are NULL or not ASCII; balances 0-2; two created_at values."""
    repo = Repository(WALLETS, con)
    records = [wallet(n, name=name, created_at=T0 + timedelta(minutes=n % 2)) for n, name in enumerate(NAMES, start=1)]
    for record in records:
        repo.insert(record)
    return records


def sort_keys(*fields: str) -> tuple[SortKey, ...]:
    keys = [SortKey(f.lstrip("-"), f.startswith("-"), WALLETS.column_map[f.lstrip("-")].nullable) for f in fields]
    return (*keys, SortKey("id"))


@pytest.mark.parametrize(
    "fields",
    [("name",), ("-name",), ("name", "-balance"), ("-name", "balance"), ("balance", "name"), ("-created_at", "-name")],
)
@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_nullable_sorts_walk_every_row_once_in_python_order(
    fields: tuple[str, ...], limit: int, ties: list[msgspec.Struct], con: duckdb.DuckDBPyConnection
) -> None:
    sort = sort_keys(*fields)
    pages = keyset_pages(Repository(WALLETS, con), sort, limit)
    assert all(len(p) == limit for p in pages[:-1])
    expected = python_sorted(ties, [(k.column, k.descending) for k in sort])
    assert [i for p in pages for i in p] == [r.id for r in expected]


def test_a_cursor_on_a_null_continues_with_the_rest_of_the_nulls(
    ties: list[msgspec.Struct], con: duckdb.DuckDBPyConnection
) -> None:
    repo = Repository(WALLETS, con)
    nulls = sorted(r.id for r in ties if r.name is None)
    after_first_null = repo.list(ListQuery((), sort_keys("name"), 100, (None, nulls[0])))
    assert [r.id for r in after_first_null] == nulls[1:]
    descending = repo.list(ListQuery((), sort_keys("-name"), 100, (None, nulls[-1])))
    assert [r.id for r in descending] == [r.id for r in python_sorted(ties, [("name", True), ("id", False)])][4:]


@pytest.mark.parametrize("pattern", ["a", "a%", "%b", "_", "\\_a", "\\%", "%\\\\%", "a_", "%", "", "A%", "_b%"])
def test_like_and_ilike_match_what_python_matches(
    pattern: str, ties: list[msgspec.Struct], con: duckdb.DuckDBPyConnection
) -> None:
    repo = Repository(WALLETS, con)
    for op, ignore_case in (("like", False), ("ilike", True)):
        listed = repo.list(ListQuery((Condition("name", op, pattern),), (SortKey("id"),), 100))
        expected = [r.id for r in ties if r.name is not None and like_matches(pattern, r.name, ignore_case=ignore_case)]
        assert [r.id for r in listed] == expected, (op, pattern)


def test_or_groups_nest_and_combine_with_and(ties: list[msgspec.Struct], con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    group = AnyOf(
        (
            (Condition("name", "is_null", True),),
            (
                Condition("balance", "eq", Decimal(2)),
                AnyOf(((Condition("name", "eq", "a"),), ())),
            ),
            (Condition("name", "in", ("c", "B")),),
        )
    )
    conditions = (Condition("version", "eq", 1), group)
    listed = repo.list(ListQuery(conditions, (SortKey("id"),), 100))
    expected = [r.id for r in ties if r.name is None or r.balance == 2 or r.name in ("c", "B")]
    assert [r.id for r in listed] == expected
    narrower = AnyOf(
        (
            (Condition("name", "eq", "a"), Condition("balance", "gt", Decimal(0))),
            (Condition("id", "eq", "x' OR 1=1 --"),),
        )
    )
    assert [r.id for r in repo.list(ListQuery((narrower,), (SortKey("id"),), 100))] == [
        r.id for r in ties if r.name == "a" and r.balance > 0
    ]
    assert repo.count_where((group,)) == len(expected)
    assert repo.count_where(()) == len(ties)
    assert repo.count_where((Condition("name", "in", ()),)) == 0


def test_many_records_are_read_by_id_in_one_query(ties: list[msgspec.Struct], con: duckdb.DuckDBPyConnection) -> None:
    repo = Repository(WALLETS, con)
    wanted = [ties[0].id, ties[5].id, ties[5].id, "missing"]
    found = repo.get_many_encoded(wanted)
    assert {i: msgspec.json.decode(data, type=type(ties[0])) for i, data in found.items()} == {
        ties[0].id: ties[0],
        ties[5].id: ties[5],
    }
    assert repo.get_many_encoded([]) == {}
    users = Repository(USERS, con)
    user = USERS.record(id="u1", created_at=T0, updated_at=T0, version=1, email="ada@example.com")
    users.insert(user, {"password_hash": "$2b$04$hash"})
    assert users.get_many_encoded(["u1"]) == {"u1": encode(user)}
    assert b"password_hash" not in users.get_many_encoded(["u1"])["u1"]
    # The encoded form (list includes, get misses) is the same bytes as encoding the records.
    assert found == {i: encode(repo.get(i)) for i in (ties[0].id, ties[5].id)}


def test_held_back_inserts_reach_the_table_before_anything_reads_it(con: duckdb.DuckDBPyConnection) -> None:
    batch = WriteBatch()
    repo, users = Repository(WALLETS, con, batch), Repository(USERS, con, batch)
    repo.insert(wallet(1))
    repo.insert(wallet(2))
    assert con.execute("SELECT count(*) FROM wallets").fetchone() == (0,), "held back, not yet sent"
    users.count()  # another table's read leaves these rows held back
    assert con.execute("SELECT count(*) FROM wallets").fetchone() == (0,)
    assert repo.count() == 2, "a read of the table itself sends them first"
    assert [r.id for r in repo.list_all()] == [wallet(1).id, wallet(2).id]


def test_held_back_outbox_entries_get_sequence_numbers_in_the_order_they_were_added(
    con: duckdb.DuckDBPyConnection,
) -> None:
    batch = WriteBatch()
    outbox = OutboxRepository(con, batch)
    ids = [str(uuid.uuid4()) for _ in range(300)]
    for n, entity_id in enumerate(ids):
        outbox.add(Change(str(uuid.uuid4()), "wallets", "created", entity_id, n + 1, T0, b"{}"))
    batch.flush(con)
    assert [c.entity_id for c in outbox.pending(1000)] == ids
