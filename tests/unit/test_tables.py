"""service/store/tables.py derives an entity's table from its registry entry. For every
entity, the derived DDL makes the same table (columns, types, nullability, key, indexed
columns) as the released migrations do, so a new entity's migration can be its output;
an entity whose record and migrations disagree fails here."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from service.model.registry import ENTITIES, EntitySpec
from service.store.ddl import apply_migrations
from service.store.tables import create_table_sql, index_columns


def table_shape(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    columns = con.execute(f'DESCRIBE "{table}"').fetchall()  # name, type, null, key, default, extra
    indexes = con.execute(
        "SELECT expressions, is_unique FROM duckdb_indexes() WHERE table_name = ?", [table]
    ).fetchall()
    indexed = sorted((expr.replace("'\"", "").replace("\"'", ""), unique) for expr, unique in indexes)
    return {"columns": columns, "indexed": indexed}


@pytest.fixture(scope="module")
def migrated() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    apply_migrations(con)
    return con


@pytest.mark.parametrize("spec", ENTITIES.values(), ids=list(ENTITIES))
def test_the_derived_ddl_makes_the_table_the_migrations_made(
    spec: EntitySpec, migrated: duckdb.DuckDBPyConnection
) -> None:
    tables = migrated.execute("SELECT table_name FROM duckdb_tables() WHERE table_name = ?", [spec.name]).fetchall()
    assert tables, (
        f"no migration creates table {spec.name!r}: append one to MIGRATIONS in service/store/ddl.py"
        f" with the SQL of `python -m service.store.tables {spec.name}` (docs/add-an-entity.md)"
    )
    derived = duckdb.connect(":memory:")
    derived.execute(create_table_sql(spec))
    assert table_shape(derived, spec.name) == table_shape(migrated, spec.name), (
        f"table {spec.name!r} as migrated differs from its record Struct: a changed record needs a new"
        " migration (ALTER TABLE) in service/store/ddl.py"
    )


def test_the_derived_columns_are_typed_required_and_keyed_from_the_record() -> None:
    con = duckdb.connect(":memory:")
    con.execute(create_table_sql(ENTITIES["users"]))
    columns = {name: (kind, null, key) for name, kind, null, key, *_ in con.execute("DESCRIBE users").fetchall()}
    assert columns["id"] == ("VARCHAR", "NO", "PRI")
    assert columns["is_active"] == ("BOOLEAN", "NO", None)
    assert columns["full_name"] == ("VARCHAR", "YES", None)
    assert columns["password_hash"] == ("VARCHAR", "NO", None), "secret columns are required text"
    assert columns["created_at"] == ("TIMESTAMP", "NO", None)


def test_indexes_cover_unique_keys_foreign_keys_and_declared_ones_once() -> None:
    assert index_columns(ENTITIES["wallets"]) == [("blockchain_symbol", "address")]
    assert index_columns(ENTITIES["alerts"]) == [("related_wallet_id",)]
    # DuckDB scans single-column indexes only: a foreign key gets one of its own.
    assert index_columns(ENTITIES["wallet_balances"]) == [("wallet_id",)]


def test_keywords_as_names_are_quoted() -> None:
    sql = create_table_sql(ENTITIES["wallet_balances"])
    assert '"timestamp" TIMESTAMP NOT NULL' in sql
    duckdb.connect(":memory:").execute(sql)
