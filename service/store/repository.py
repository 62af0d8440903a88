"""Generic SQL for every entity: the only module (with ddl and migration) that writes SQL.

Table and column names come from the registry, never from a request; every
value is bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from service.model.columns import from_db, to_db
from service.model.registry import EntitySpec, UniqueKey
from service.store.database import Cursor
from service.store.timings import timed
from service.store.write_batch import WriteBatch


@dataclass(frozen=True)
class Condition:
    """`column <op> value`; the column was checked against the entity's filterable fields."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    conditions: tuple[Condition, ...]
    sort: tuple[SortKey, ...]  # always ends with id
    limit: int
    after: tuple[Any, ...] | None = None  # the sort values of the last row of the previous page


_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _q(name: str) -> str:
    return f'"{name}"'


class Repository:
    """Rows of one entity's table, as record Structs."""

    def __init__(self, spec: EntitySpec, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        self.spec = spec
        self.cur = cursor
        self.batch = batch  # the writer's: held-back inserts and known ids (service.store.write_batch)
        self._table = _q(spec.name)
        self._select = ", ".join(_q(c.name) for c in spec.columns)

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        """Every statement on this table goes through here: held-back inserts go out first."""
        if self.batch is not None:
            self.batch.flush(self.cur, self.spec.name)
        return self.cur.execute(sql, params)

    def _change(self, sql: str, params: Sequence[Any]) -> None:
        """An UPDATE or DELETE, counted: a refused write that changed nothing is told apart."""
        self._execute(sql, params)
        if self.batch is not None:
            self.batch.wrote()

    def _first(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        rows = self._execute(sql, params).fetchall()  # all of it: see service.store.database.first_row
        return rows[0] if rows else None

    # -- reads ---------------------------------------------------------------
    def to_record(self, row: Sequence[Any]) -> msgspec.Struct:
        values = {c.name: from_db(c, v) for c, v in zip(self.spec.columns, row, strict=False)}
        return self.spec.record(**values)

    @timed("get")
    def get(self, entity_id: str) -> msgspec.Struct | None:
        row = self._first(f"SELECT {self._select} FROM {self._table} WHERE id = ?", [entity_id])
        return None if row is None else self.to_record(row)

    @timed("exists")
    def exists(self, entity_id: str) -> bool:
        if self.batch is not None and (known := self.batch.exists(self.spec.name, entity_id)) is not None:
            return known
        return self._first(f"SELECT 1 FROM {self._table} WHERE id = ?", [entity_id]) is not None

    @timed("count")
    def count(self) -> int:
        return int(self._first(f"SELECT count(*) FROM {self._table}")[0])

    @timed("ids_where")
    def ids_where(self, column: str, value: Any) -> list[str]:
        self.spec.column_map[column]  # KeyError for a column the registry does not know
        rows = self._execute(f"SELECT id FROM {self._table} WHERE {_q(column)} = ? ORDER BY id", [value])
        return [r[0] for r in rows.fetchall()]

    @timed("find_duplicate")
    def find_duplicate(self, key: UniqueKey, values: dict[str, Any], exclude_id: str | None) -> str | None:
        """The id of another row with the same unique key (text compared case-insensitively)."""
        where, params = [], []
        for name in key.fields:
            where.append(f"lower({_q(name)}) = lower(?)")
            params.append(values[name])
        if exclude_id is not None:
            where.append("id <> ?")
            params.append(exclude_id)
        row = self._first(f"SELECT id FROM {self._table} WHERE {' AND '.join(where)} LIMIT 1", params)
        return None if row is None else row[0]

    @timed("secret")
    def secret(self, column: str, lookup_column: str, value: Any) -> tuple[msgspec.Struct, Any] | None:
        """(record, secret column value) of the row whose lookup column equals value, case-insensitively."""
        assert column in self.spec.secret_columns and lookup_column in self.spec.column_map
        row = self._first(
            f"SELECT {self._select}, {_q(column)} FROM {self._table} WHERE lower({_q(lookup_column)}) = lower(?)"
            " ORDER BY created_at LIMIT 1",
            [value],
        )
        return None if row is None else (self.to_record(row[:-1]), row[-1])

    @timed("list")
    def list(self, query: ListQuery) -> list[msgspec.Struct]:
        where, params = [], []
        for cond in query.conditions:
            sql, args = _condition_sql(cond)
            where.append(sql)
            params.extend(args)
        if query.after is not None:
            sql, args = _after_sql(query.sort, query.after)
            where.append(sql)
            params.extend(args)
        order = ", ".join(f"{_q(k.column)} {'DESC' if k.descending else 'ASC'}" for k in query.sort)
        sql = f"SELECT {self._select} FROM {self._table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} LIMIT ?"
        params.append(query.limit)
        return [self.to_record(r) for r in self._execute(sql, params).fetchall()]

    @timed("list_all")
    def list_all(self) -> list[msgspec.Struct]:
        rows = self._execute(f"SELECT {self._select} FROM {self._table} ORDER BY id").fetchall()
        return [self.to_record(r) for r in rows]

    # -- writes --------------------------------------------------------------
    def insert(self, record: msgspec.Struct, secrets: dict[str, Any] | None = None) -> None:
        names = [c.name for c in self.spec.columns]
        params = [to_db(c, getattr(record, c.name)) for c in self.spec.columns]
        for name, value in (secrets or {}).items():
            assert name in self.spec.secret_columns
            names.append(name)
            params.append(value)
        if self.batch is not None:
            self.batch.add(self.spec.name, tuple(names), params, record.id)
            return
        marks = ", ".join("?" for _ in names)
        self.cur.execute(f"INSERT INTO {self._table} ({', '.join(map(_q, names))}) VALUES ({marks})", params)

    @timed("update")
    def update(self, record: msgspec.Struct, changed: Iterable[str], secrets: dict[str, Any] | None = None) -> None:
        """Write the changed columns of `record` (plus updated_at and version) and any secrets."""
        names = [*dict.fromkeys([*changed, "updated_at", "version"])]
        sets = [f"{_q(n)} = ?" for n in names]
        params = [to_db(self.spec.column_map[n], getattr(record, n)) for n in names]
        for name, value in (secrets or {}).items():
            assert name in self.spec.secret_columns
            sets.append(f"{_q(name)} = ?")
            params.append(value)
        params.append(record.id)
        self._change(f"UPDATE {self._table} SET {', '.join(sets)} WHERE id = ?", params)

    @timed("delete")
    def delete(self, entity_id: str) -> None:
        self._change(f"DELETE FROM {self._table} WHERE id = ?", [entity_id])
        if self.batch is not None:
            self.batch.noted(self.spec.name, entity_id, exists=False)


def _condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    col = _q(cond.column)
    if cond.op in _OPS:
        return f"{col} {_OPS[cond.op]} ?", [cond.value]
    if cond.op == "in":
        if not cond.value:
            return "FALSE", []
        return f"{col} IN ({', '.join('?' for _ in cond.value)})", list(cond.value)
    if cond.op == "contains":
        return f"contains(lower({col}), lower(?))", [cond.value]
    if cond.op == "is_null":
        return f"{col} IS {'' if cond.value else 'NOT '}NULL", []
    raise ValueError(f"unknown operator {cond.op}")


def _after_sql(sort: Sequence[SortKey], after: Sequence[Any]) -> tuple[str, list[Any]]:
    """Keyset predicate: rows strictly after `after` in the (mixed-direction) sort order."""
    alternatives, params = [], []
    for i, key in enumerate(sort):
        parts = [f"{_q(k.column)} = ?" for k in sort[:i]]
        parts.append(f"{_q(key.column)} {'<' if key.descending else '>'} ?")
        alternatives.append("(" + " AND ".join(parts) + ")")
        params.extend(after[:i])
        params.append(after[i])
    return "(" + " OR ".join(alternatives) + ")", params
