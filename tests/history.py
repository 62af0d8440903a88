"""Large child tables filled straight in DuckDB (`INSERT ... SELECT ... FROM range(n)`),
for plan tests and benchmarks: a million rows in a few seconds, no service involved.

Rows arrive the way ingested history does: in time order, the parents taking turns
(row i belongs to parent i % parents, at BASE + i seconds). Ids look like uuid4s
(md5 of the row number), so DuckDB's string zone maps see them as random.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import duckdb

from service.model.columns import Kind
from service.model.registry import ENTITIES
from service.store.sql import quote

BASE = datetime(2024, 1, 1)


def uuid_sql(salt: str, number: str) -> str:
    """SQL for a random-looking, repeatable uuid of `number` (an SQL expression)."""
    return f"md5('{salt}' || ({number})::VARCHAR)::UUID::VARCHAR"


def made_id(salt: str, n: int) -> str:
    """The id `uuid_sql(salt, str(n))` gives in DuckDB."""
    return str(uuid.UUID(hashlib.md5(f"{salt}{n}".encode()).hexdigest()))


def _value_sql(name: str, kind: Kind, nullable: bool, table: str, fk: str, parents: int) -> str:
    if name == "id":
        return uuid_sql(table, "i")
    if name == fk:
        return uuid_sql("parent", f"i % {parents}")
    if nullable:
        return "NULL"
    return {
        Kind.TEXT: "'bench'",
        Kind.INTEGER: "1",
        Kind.BOOLEAN: "false",
        Kind.DECIMAL: "(i % 1000)::DECIMAL(24,8)",
        Kind.TIMESTAMP: f"TIMESTAMP '{BASE.isoformat(sep=' ')}' + to_seconds(i)",
        Kind.JSON: "'[]'",
    }[kind]


def fill_children(con: duckdb.DuckDBPyConnection, table: str, rows: int, parents: int, *, start: int = 0) -> None:
    """Append rows start..start+rows-1 to an entity table whose first foreign key points at
    `parents` parents (ids `made_id("parent", n)`); the parent rows themselves are not made."""
    spec = ENTITIES[table]
    fk = spec.foreign_keys[0].field
    columns = spec.columns
    values = ", ".join(_value_sql(c.name, c.kind, c.nullable, table, fk, parents) for c in columns)
    names = ", ".join(quote(c.name) for c in columns)
    con.execute(
        f"INSERT INTO {quote(table)} ({names}) SELECT {values} FROM range({start}, {start + rows}) t(i)",
    )
