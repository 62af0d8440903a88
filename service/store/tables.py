"""An entity's table, derived from its registry entry: the DDL a new entity's migration uses.

Columns come from the record Struct (service/model/columns.py): the DuckDB type of the
column's kind, NOT NULL unless the field allows None, `id` the primary key. Secret
columns (never part of the record) are text and required. Indexes: one per unique key,
one of its own per foreign key field, plus the spec's own. DuckDB finds rows through
single-column indexes only, so an index that merely starts with the field would not do.

A migration, once released, is frozen text (tests/unit/test_released_migrations.py): paste the SQL
this prints into the new migration rather than calling it there, so a later change to
the record cannot silently rewrite a released migration.

    python -m service.store.tables notes
"""

from __future__ import annotations

import sys

from service.model.registry import ENTITIES, EntitySpec, UniqueKey


def quoted(name: str) -> str:
    """An identifier as DuckDB reads it whatever it is (`timestamp`, `order` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def column_sql(spec: EntitySpec) -> list[str]:
    lines = []
    for column in spec.columns:
        constraint = " PRIMARY KEY" if column.name == "id" else "" if column.nullable else " NOT NULL"
        lines.append(f"{quoted(column.name)} {column.sql_type}{constraint}")
    lines += [f"{quoted(name)} VARCHAR NOT NULL" for name in spec.secret_columns]
    lines += [f"{quoted(key.column)} VARCHAR" for key in spec.unique]
    return lines


def key_sql(key: UniqueKey, alias: str) -> str:
    """SQL computing UniqueKey.normalized from the fields of the row `alias` (for statements
    that fill the key column from rows already in SQL: migrations)."""
    parts = [f"lower(CAST({alias}.{quoted(name)} AS VARCHAR))" for name in key.fields]
    return " || ".join([f"length({part}) || ':' || {part}" for part in parts[:-1]] + [parts[-1]])


def index_columns(spec: EntitySpec) -> list[tuple[str, ...]]:
    """The column lists to index, in a stable order, without duplicates."""
    wanted = [key.fields for key in spec.unique] + list(spec.indexes)
    wanted += [(fk.field,) for fk in spec.foreign_keys]
    return list(dict.fromkeys(wanted))


def create_table_sql(spec: EntitySpec) -> str:
    """CREATE TABLE and CREATE INDEX statements for the entity's table."""
    body = ",\n    ".join(column_sql(spec))
    table = quoted(spec.name)
    statements = [f"CREATE TABLE {table} (\n    {body}\n);"]
    for columns in index_columns(spec):
        index = quoted(f"{spec.name}_{'_'.join(columns)}")
        statements.append(f"CREATE INDEX {index} ON {table} ({', '.join(map(quoted, columns))});")
    for key in spec.unique:
        index = quoted(f"{spec.name}_{key.column}")
        statements.append(f"CREATE UNIQUE INDEX {index} ON {table} ({quoted(key.column)});")
    return "\n".join(statements) + "\n"


if __name__ == "__main__":
    for name in sys.argv[1:] or list(ENTITIES):
        print(create_table_sql(ENTITIES[name]))
