"""Generic SQL for every entity: the only module (with ddl and migration) that writes SQL.

Table and column names come from the registry, never from a request; every
value is bound as a parameter.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import msgspec

from service.model.columns import Kind, to_db
from service.model.registry import EntitySpec, UniqueKey
from service.store.rows import EncodedRows, RecordT, encode_row, row_record
from service.store.sql import Cursor, count_rows, first_row, in_list, quote
from service.store.tables import index_columns
from service.store.timings import timed
from service.store.write_batch import TableAccess, Unknown, WriteBatch


@dataclass(frozen=True)
class Condition:
    """`column <op> value`; the column was checked against the entity's filterable fields."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class AnyOf:
    """At least one branch holds; a branch holds when all of its filters do (an empty one always)."""

    branches: tuple[tuple[Filter, ...], ...]


Filter = Condition | AnyOf


@dataclass(frozen=True)
class SortKey:
    """Ascending puts NULLs last and descending puts them first: NULL sorts above every value,
    so one direction is the exact reverse of the other."""

    column: str
    descending: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class ListQuery:
    conditions: tuple[Filter, ...]  # all must hold
    sort: tuple[SortKey, ...]  # always ends with id
    limit: int
    after: tuple[Any, ...] | None = None  # the sort values of the last row of the previous page
    # The first sort key (a column without NULLs) goes no further than this: a hint, whose
    # page is exact only when it comes back full (service.usecases.page_spans.read_within).
    bound: Any = None


# Per entity: the columns with an ART index of their own (the primary key included).
_INDEXED: dict[str, frozenset[str]] = {}
_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# The pattern was checked (service.store.listing): a backslash escapes only %, _ and itself.
_PATTERNS = {"like": "LIKE", "ilike": "ILIKE"}


class Repository(TableAccess, Generic[RecordT]):
    """Rows of one entity's table, as record Structs. With the writer's batch
    (service.store.write_batch) inserts are held back and known ids answered from memory."""

    def __init__(self, spec: EntitySpec[RecordT], cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, spec.name, batch)
        self.spec = spec
        self._table = quote(spec.name)
        self._select = ", ".join(quote(c.name) for c in spec.columns)

    # -- reads ---------------------------------------------------------------
    def to_record(self, row: Sequence[Any]) -> RecordT:
        """A DuckDB row of the record's columns as the record."""
        return row_record(self.spec, row)

    @timed("get")
    def get(self, entity_id: str) -> RecordT | None:
        row = self._first(f"SELECT {self._select} FROM {self._table} WHERE id = ?", [entity_id])
        return None if row is None else self.to_record(row)

    @timed("get_many_encoded")
    def get_many_encoded(self, ids: Iterable[str]) -> dict[str, bytes]:
        """id -> reply bytes of those ids that exist (as `encode(get(id))`), in one
        query (service.store.sql.in_list), without building records: each row's
        values go positionally into a Struct of the record's fields (encode_row)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        where, params = in_list("id", wanted)
        rows = self._execute(f"SELECT {self._select} FROM {self._table} WHERE {where}", params)
        # id is every record's first column (schema.common.Record)
        return {row[0]: encode_row(self.spec, row) for row in rows.fetchall()}

    @timed("exists")
    def exists(self, entity_id: str) -> bool:
        if self.batch is not None and (known := self.batch.exists(self.spec.name, entity_id)) is not None:
            return known
        return self._first(f"SELECT 1 FROM {self._table} WHERE id = ?", [entity_id]) is not None

    @timed("count")
    def count(self) -> int:
        return count_rows(self._flushed(), self.spec.name)

    @timed("ids_where")
    def ids_where(self, column: str, value: Any) -> list[str]:
        self.spec.column_map[column]  # KeyError for a column the registry does not know
        rows = self._execute(f"SELECT id FROM {self._table} WHERE {quote(column)} = ? ORDER BY id", [value])
        return [r[0] for r in rows.fetchall()]

    @timed("find_duplicate")
    def find_duplicate(self, key: UniqueKey, values: dict[str, Any], exclude_id: str | None) -> str | None:
        """The id of another row with the same unique key (UniqueKey.normalized): from what the
        writer's group knows, else one lookup of the key's indexed column. Rows held back for
        this table stay held back: their keys are known to the batch."""
        normalized = key.normalized(values)
        owner = Unknown if self.batch is None else self.batch.find_key(self.spec.name, key.column, normalized)
        if owner is Unknown:
            # No flush: the table holds every row but the held-back ones (see above).
            row = first_row(self.cur, f"SELECT id FROM {self._table} WHERE {quote(key.column)} = ?", [normalized])
            owner = None if row is None else row[0]
            if self.batch is not None:
                self.batch.note_key(self.spec.name, key.column, normalized, owner)
        return owner if isinstance(owner, str) and owner != exclude_id else None

    @timed("secret")
    def secret(self, column: str, lookup_column: str, value: Any) -> tuple[RecordT, Any] | None:
        """(record, secret column value) of the row whose lookup column equals value, case-insensitively."""
        assert column in self.spec.secret_columns and lookup_column in self.spec.column_map
        row = self._first(
            f"SELECT {self._select}, {quote(column)} FROM {self._table} WHERE lower({quote(lookup_column)}) = lower(?)"
            " ORDER BY created_at LIMIT 1",
            [value],
        )
        return None if row is None else (self.to_record(row[:-1]), row[-1])

    @timed("list")
    def list(self, query: ListQuery) -> list[RecordT]:
        sql, params = list_sql(self.spec, query)
        return [self.to_record(r) for r in self._execute(sql, params).fetchall()]

    @timed("list")
    def list_encoded(self, query: ListQuery) -> EncodedRows[RecordT]:
        """The page of `list` as reply bytes per row (each equal to `encode(record)`), built
        without records (encode_row); a row's record on demand, for the cursor."""
        sql, params = list_sql(self.spec, query)
        rows = self._execute(sql, params).fetchall()
        return EncodedRows(self.spec, [encode_row(self.spec, r) for r in rows], rows)

    @timed("list")
    def list_joined_encoded(
        self, query: ListQuery, parents: Sequence[tuple[str, EntitySpec]]
    ) -> tuple[EncodedRows[RecordT], builtins.list[builtins.list[bytes | None]]]:
        """list_encoded with each row's parents read in the same statement (list_joined_sql):
        the page, and per row the reply bytes of each parent (None: it has none)."""
        sql, params = list_joined_sql(self.spec, query, parents)
        rows = self._execute(sql, params).fetchall()
        width = len(self.spec.columns)
        page = [row[:width] for row in rows]
        found: builtins.list[builtins.list[bytes | None]] = []
        for row in rows:
            start, mine = width, []
            for _, parent in parents:
                values = row[start : start + len(parent.columns)]
                start += len(parent.columns)
                mine.append(None if values[0] is None else encode_row(parent, values))  # id is every record's first
            found.append(mine)
        return EncodedRows(self.spec, [encode_row(self.spec, r) for r in page], page), found

    @timed("count_where")
    def count_where(self, conditions: Sequence[Filter]) -> int:
        """How many rows match all the conditions (a list's total, whatever the page)."""
        where, params = _where_sql(conditions)
        row = self._first(f"SELECT count(*) FROM {self._table} WHERE {where}", params)
        assert row is not None
        return int(row[0])

    # `list` here is the method above, so the builtin is spelled out.
    @timed("list_all")
    def list_all(self) -> builtins.list[RecordT]:
        rows = self._execute(f"SELECT {self._select} FROM {self._table} ORDER BY id").fetchall()
        return [self.to_record(r) for r in rows]

    # -- writes --------------------------------------------------------------
    def insert(self, record: RecordT, secrets: dict[str, Any] | None = None) -> None:
        names = [c.name for c in self.spec.columns]
        params = [to_db(c, getattr(record, c.name)) for c in self.spec.columns]
        for name, value in (secrets or {}).items():
            assert name in self.spec.secret_columns
            names.append(name)
            params.append(value)
        keys = self._keys(record)
        names += keys
        params += keys.values()
        self._insert(tuple(names), params, record.id, keys=keys)

    @timed("insert_staged")
    def insert_staged(self, staged: str, ids: builtins.list[str]) -> None:
        """New rows from table `staged` (made by `stage_json_sql` off the writer; `ids`
        theirs): no Python value per row is made or bound. Only for entities whose rows are
        their records' columns (no unique keys, no secrets)."""
        assert not self.spec.unique and not self.spec.secret_columns, f"{self.spec.name}: use insert()"
        names = ", ".join(quote(c.name) for c in self.spec.columns)
        self._execute(f"INSERT INTO {self._table} ({names}) SELECT {names} FROM {staged}")
        if self.batch is not None:
            self.batch.inserted(self.spec.name, ids)

    @timed("update")
    def update(self, record: RecordT, changed: Iterable[str], secrets: dict[str, Any] | None = None) -> None:
        """Write the changed columns of `record` (plus updated_at and version), any secrets, and
        the key column of each unique key whose fields changed."""
        names = [*dict.fromkeys([*changed, "updated_at", "version"])]
        sets = [f"{quote(n)} = ?" for n in names]
        params = [to_db(self.spec.column_map[n], getattr(record, n)) for n in names]
        for name, value in (secrets or {}).items():
            assert name in self.spec.secret_columns
            sets.append(f"{quote(name)} = ?")
            params.append(value)
        for column, key in self._keys(record, names).items():
            sets.append(f"{quote(column)} = ?")
            params.append(key)
        params.append(record.id)
        self._change(f"UPDATE {self._table} SET {', '.join(sets)} WHERE id = ?", params)

    def _keys(self, record: RecordT, changed: Iterable[str] | None = None) -> dict[str, str]:
        """Unique column -> the record's normalized key, for the keys with a field in `changed`
        (every key when None). Stored beside the record, never part of it."""
        fields = None if changed is None else set(changed)
        return {
            key.column: key.normalized({name: getattr(record, name) for name in key.fields})
            for key in self.spec.unique
            if fields is None or fields.intersection(key.fields)
        }

    @timed("delete")
    def delete(self, entity_id: str) -> None:
        self._change(f"DELETE FROM {self._table} WHERE id = ?", [entity_id])
        if self.batch is not None:
            self.batch.noted(self.spec.name, entity_id, exists=False)


def list_sql(spec: EntitySpec, query: ListQuery) -> tuple[str, list[Any]]:
    """The SELECT of one list page: WHERE (filters, then the keyset cursor), ORDER BY, LIMIT.

    Its shape decides how DuckDB finds the rows (docs/decisions.md, "Per-parent lists"):
    - first sort key a timestamp: `... ORDER BY ... LIMIT` over the table. DuckDB's Top-N
      then scans row groups newest-first and stops at the first one that cannot hold a
      row of the page: rows arrive in time order, so a parent's recent page (and, through
      the cursor, any later one) costs the row groups it lies in, not the table.
    - otherwise, with an equality filter on an indexed column: the filtered rows in a
      subquery of their own (`OFFSET 0` keeps the optimizer from merging it), so the scan
      carries no Top-N filter and DuckDB may answer it from the ART index (it does when at
      most max(2048, 0.1% of the rows) match; a Top-N over an unordered key prunes nothing).
    - otherwise: the Top-N over the filter and sort columns finds the page's rowids, and only
      those rows are read whole (below).
    """
    where, params = _where_sql(query.conditions)
    if query.after is not None:
        sql, args = _after_sql(query.sort, query.after)
        where = sql if where == "TRUE" else f"{where} AND {sql}"
        params.extend(args)
    if query.bound is not None:  # rows beyond it sort after every row before it
        first = query.sort[0]
        where = f"{where} AND {quote(first.column)} {'>=' if first.descending else '<='} ?"
        params.append(query.bound)
    select = ", ".join(quote(c.name) for c in spec.columns)
    table, order = quote(spec.name), _order_sql(query.sort)
    source = f"{table} WHERE {where}"
    params.append(query.limit)
    if spec.column_map[query.sort[0].column].kind is Kind.TIMESTAMP:
        return f"SELECT {select} FROM {source} ORDER BY {order} LIMIT ?", params
    if _index_lookup(spec, query):
        return f"SELECT {select} FROM (SELECT {select} FROM {source} OFFSET 0) ORDER BY {order} LIMIT ?", params
    # The Top-N otherwise carries every column of every matching row (33,000 alerts of one
    # status: 4.5 ms against 3.1 ms).
    page = f"SELECT rowid FROM {source} ORDER BY {order} LIMIT ?"
    return f"SELECT {select} FROM {table} WHERE rowid IN ({page}) ORDER BY {order}", params


def _index_lookup(spec: EntitySpec, query: ListQuery) -> bool:
    """Whether a top-level condition (not one inside an `or` group) is `column = value` on a
    column with an index of its own (DuckDB scans only single-column ART indexes)."""
    indexed = _INDEXED.get(spec.name)
    if indexed is None:
        indexed = _INDEXED[spec.name] = frozenset(["id", *(cols[0] for cols in index_columns(spec) if len(cols) == 1)])
    return any(isinstance(c, Condition) and c.op == "eq" and c.column in indexed for c in query.conditions)


def _where_sql(conditions: Sequence[Filter]) -> tuple[str, list[Any]]:
    """All conditions ANDed (TRUE when there are none)."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        sql, args = _condition_sql(cond)
        parts.append(sql)
        params.extend(args)
    return (" AND ".join(parts) or "TRUE"), params


def _condition_sql(cond: Filter) -> tuple[str, list[Any]]:
    if isinstance(cond, AnyOf):
        branches, params = [], []
        for branch in cond.branches:
            sql, args = _where_sql(branch)
            branches.append(f"({sql})")
            params.extend(args)
        return "(" + " OR ".join(branches) + ")", params
    col = quote(cond.column)
    if cond.op in _OPS:
        return f"{col} {_OPS[cond.op]} ?", [cond.value]
    if cond.op == "in":
        if not cond.value:
            return "FALSE", []
        return f"{col} IN ({', '.join('?' for _ in cond.value)})", list(cond.value)
    if cond.op == "contains":
        return f"contains(lower({col}), lower(?))", [cond.value]
    if cond.op in _PATTERNS:
        return f"{col} {_PATTERNS[cond.op]} ? ESCAPE '\\'", [cond.value]
    if cond.op == "is_null":
        return f"{col} IS {'' if cond.value else 'NOT '}NULL", []
    raise ValueError(f"unknown operator {cond.op}")


def _order_sql(sort: Sequence[SortKey], table: str = "") -> str:
    """ORDER BY of these keys; `table`: the alias their columns are qualified with ("" none)."""
    prefix = f"{table}." if table else ""
    return ", ".join(
        f"{prefix}{quote(k.column)} {'DESC NULLS FIRST' if k.descending else 'ASC NULLS LAST'}" for k in sort
    )


def list_joined_sql(
    spec: EntitySpec, query: ListQuery, parents: Sequence[tuple[str, EntitySpec]]
) -> tuple[str, list[Any]]:
    """The page of list_sql with each row's parents in the same statement: per (key column,
    parent spec), the parent's columns after the row's, NULLs where it has none. A LEFT JOIN
    by the parent's id, which DuckDB runs as a hash join over the parent table: for small
    parent tables only (usecases.listing, decision 56)."""
    page, params = list_sql(spec, query)
    columns = [f"p.{quote(c.name)}" for c in spec.columns]
    joins = []
    for n, (key, parent) in enumerate(parents):
        columns += [f"j{n}.{quote(c.name)}" for c in parent.columns]
        joins.append(f" LEFT JOIN {quote(parent.name)} j{n} ON j{n}.id = p.{quote(key)}")
    return f"SELECT {', '.join(columns)} FROM ({page}) p{''.join(joins)} ORDER BY {_order_sql(query.sort, 'p')}", params


def _beyond_sql(key: SortKey, value: Any) -> tuple[str | None, list[Any]]:
    """Rows whose `key` sorts strictly after `value`; None when no value can (NULL is last)."""
    col = quote(key.column)
    if value is None:
        return (f"{col} IS NOT NULL", []) if key.descending else (None, [])
    if key.descending:
        return f"{col} < ?", [value]
    return (f"({col} > ? OR {col} IS NULL)" if key.nullable else f"{col} > ?"), [value]


def _after_sql(sort: Sequence[SortKey], after: Sequence[Any]) -> tuple[str, list[Any]]:
    """Keyset predicate: rows strictly after `after` in the (mixed-direction, NULL-aware) sort
    order: equal on the first i keys and beyond on key i, for some i."""
    alternatives: list[str] = []
    params: list[Any] = []
    for i, key in enumerate(sort):
        beyond, args = _beyond_sql(key, after[i])
        if beyond is None:
            continue
        parts: list[str] = []
        for prior, value in zip(sort[:i], after[:i], strict=True):
            if value is None:
                parts.append(f"{quote(prior.column)} IS NULL")
            else:
                parts.append(f"{quote(prior.column)} = ?")
                params.append(value)
        parts.append(beyond)
        params.extend(args)
        alternatives.append("(" + " AND ".join(parts) + ")")
    return "(" + (" OR ".join(alternatives) or "FALSE") + ")", params


def stage_json_sql(spec: EntitySpec, table: str) -> str:
    """CREATE TABLE `table` (a qualified name) of the records in a JSON array parameter, as
    `encode` writes them, each field parsed straight to its column's type by DuckDB: decimals
    arrive as exact fixed-point text and timestamps as RFC 3339 in UTC, which DuckDB reads as
    naive UTC (a third faster than reading text and casting it)."""
    shape = {c.name: c.sql_type for c in spec.columns}
    names = ", ".join(f"r.{quote(c.name)} AS {quote(c.name)}" for c in spec.columns)
    return (
        f"CREATE TABLE {table} AS SELECT {names}"
        f" FROM (SELECT unnest(from_json(?::VARCHAR, '[{msgspec.json.encode(shape).decode()}]')) AS r)"
    )
