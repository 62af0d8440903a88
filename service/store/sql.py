"""The small SQL rules every module that writes SQL shares, each written once: quoting an
identifier, reading a first row, counting a table's rows, the INSERT of held-back rows,
the schema version.

Identifiers come from the registry or from the code, never from a request; values are
always bound as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def schema_version(cur: Cursor) -> int:
    """The newest migration applied (0 before any). The table `schema_version` must exist."""
    return int(one_row(cur, "SELECT coalesce(max(version), 0) FROM schema_version")[0])
