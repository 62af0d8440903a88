"""The small SQL rules every module that writes SQL shares, each written once: quoting an
identifier, reading a first row, counting a table's rows, the INSERT of held-back rows,
"rows whose column is in this list", the schema version.

Identifiers come from the registry or from the code, never from a request; values are
always bound as parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import duckdb

from service.model.registry import ENTITY_ORDER

Cursor = duckdb.DuckDBPyConnection


def quote(name: str) -> str:
    """An identifier (table, column) as SQL: `"name"`, any `"` in it doubled."""
    return '"' + name.replace('"', '""') + '"'


def first_row(cur: Cursor, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...] | None:
    """The first row, or None. Reads the whole result: a half-read one (`fetchone`) keeps
    its transaction open on the cursor, and DuckDB then refuses CHECKPOINT on close."""
    rows = cur.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def one_row(cur: Cursor, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (count(*), max(), EXISTS)."""
    row = first_row(cur, sql, params)
    if row is None:
        raise LookupError(f"no row from a query that always returns one: {sql}")
    return row


def count_rows(cur: Cursor, table: str) -> int:
    return int(one_row(cur, f"SELECT count(*) FROM {quote(table)}")[0])


def table_counts(cur: Cursor, tables: Iterable[str] = ENTITY_ORDER) -> dict[str, int]:
    """Rows per table (every entity table by default)."""
    return {name: count_rows(cur, name) for name in tables}


def insert_sql(table: str, columns: Sequence[str], rows: int = 1) -> str:
    """`INSERT INTO "table" ("a", "b") VALUES (?, ?), ...` for `rows` rows of these columns."""
    names = ", ".join(map(quote, columns))
    marks = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * rows)
    return f"INSERT INTO {quote(table)} ({names}) VALUES {marks}"


# From this many values on, an IN list is one list parameter joined in (SELECT unnest(?)):
# binding each value costs ~25 us (1,000 ids: 27 ms against 3 ms for the join on 10,000
# wallets), while the join scans the table instead of its index (1,000 of 1M ids: 51 ms
# against 41 ms; 100: 59 against 10). Measured with DuckDB 2.0.1 (docs/decisions.md).
BULK_LOOKUP = 500


def in_list(column: str, values: Collection[str]) -> tuple[str, list[Any]]:
    """`"column" IN (...)` over these text values (ids, keys) and its parameters: each value
    bound, so DuckDB looks them up in the column's index, or from BULK_LOOKUP values on one
    list parameter joined in. FALSE for no values (`IN ()` is not SQL)."""
    if not values:
        return "FALSE", []
    if len(values) >= BULK_LOOKUP:
        return f"{quote(column)} IN (SELECT unnest(?::VARCHAR[]))", [list(values)]
    return f"{quote(column)} IN ({', '.join('?' * len(values))})", list(values)


def schema_version(cur: Cursor) -> int:
    """The newest migration applied (0 before any). The table `schema_version` must exist."""
    return int(one_row(cur, "SELECT coalesce(max(version), 0) FROM schema_version")[0])
