"""service.store.sql.in_list: the one spelling of "rows whose column is in this list" finds the
same rows whichever form it takes (bound values, or one list joined in from BULK_LOOKUP on)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from service.store.sql import BULK_LOOKUP, in_list

ROWS = 2 * BULK_LOOKUP


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    # A quote and a non-ASCII character in some keys: values are bound, never spelled into SQL.
    connection.execute(
        'CREATE TABLE t (id VARCHAR PRIMARY KEY, "the key" VARCHAR)'
        " ; INSERT INTO t SELECT 'id-' || i, CASE WHEN i % 3 = 0 THEN 'k''é' || i ELSE 'k' || i END"
        f" FROM range({ROWS}) r(i)"
    )
    yield connection
    connection.close()


def found(con: duckdb.DuckDBPyConnection, column: str, values: list[str]) -> set[str]:
    where, params = in_list(column, values)
    return {row[0] for row in con.execute(f"SELECT id FROM t WHERE {where}", params).fetchall()}


@pytest.mark.parametrize("size", [1, BULK_LOOKUP - 1, BULK_LOOKUP, ROWS])
def test_finds_exactly_the_rows_listed_below_and_from_the_bulk_size(con: duckdb.DuckDBPyConnection, size: int) -> None:
    # Every other value is missing from the table: only those present come back.
    wanted = [f"id-{i}" if i % 2 == 0 else f"absent-{i}" for i in range(size)]
    assert found(con, "id", wanted) == {v for v in wanted if v.startswith("id-")}


@pytest.mark.parametrize("size", [BULK_LOOKUP - 1, BULK_LOOKUP])
def test_quotes_the_column_and_binds_values_with_quotes(con: duckdb.DuckDBPyConnection, size: int) -> None:
    keys = [f"k'é{i}" if i % 3 == 0 else f"k{i}" for i in range(size)]
    assert found(con, "the key", keys) == {f"id-{i}" for i in range(size)}


def test_bound_values_below_the_bulk_size_and_one_list_from_it() -> None:
    small = [str(i) for i in range(BULK_LOOKUP - 1)]
    sql, params = in_list("id", small)
    assert sql.startswith('"id" IN (?, ') and params == small  # each bound: an index lookup
    large = [*small, "last"]
    sql, params = in_list("id", large)
    assert sql == '"id" IN (SELECT unnest(?::VARCHAR[]))' and params == [large]


def test_no_values_match_no_row(con: duckdb.DuckDBPyConnection) -> None:
    assert in_list("id", []) == ("FALSE", [])
    assert found(con, "id", []) == set()
