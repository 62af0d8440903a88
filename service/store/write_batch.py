"""What the writer's current transaction holds back and already knows.

From Python every DuckDB statement costs about 0.2-0.5 ms whatever it does, so a group
commit (many writes in one transaction) pays per statement, not per row:

- inserts are held back and sent as one `INSERT ... SELECT unnest(?), ...` per table, each
  column one list parameter (DuckDB's bulk path; bench/writer_probe.py). Whoever reads or
  changes a table flushes it first (the repositories do), and the writer flushes
  everything before COMMIT, so no statement misses a row. A table numbered by a sequence
  (the outbox) gets the group's numbers drawn by that same statement, in the order rows
  were added;
- every parent id and unique key the group's writes declared they will check is looked
  up in one query per table (a key by its indexed column), and the rows the group inserts
  and deletes are tracked, so `Repository.exists` and `find_duplicate` answer from memory,
  without flushing the group's held-back rows one write at a time.

A unique key's owner is known only while nothing else changed its table: an UPDATE or
DELETE may move or free any key, so it drops what was known of that table's keys (the
rows held back for it are flushed before, so every held-back row's key stays known).
Only writes that go through repositories keep this exact; the writer forgets what it knows
around any write that takes the raw cursor (UnitOfWork.cursor). `TableAccess` is the one
place that sends a table's held-back rows before a statement on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

from service.store.rollup_journal import RollupJournal
from service.store.sql import Cursor, first_row, in_list, insert_sql, quote

# (table, id): does the row exist; (table, unique column, normalized key): who holds the key.
Lookup = tuple[str, str] | tuple[str, str, str]
Unknown = object()  # find_key's answer when the table must be asked


class Deferred(Protocol):
    """Work a group's writes share, run once at the end of its transaction with a unit of
    work of its own (service.store.uow.UnitOfWork)."""

    def run(self, uow: Any) -> None: ...


DeferredT = TypeVar("DeferredT", bound=Deferred)


class WriteBatch:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, tuple[str, ...]], list[Sequence[Any]]] = {}
        self._numbered: dict[str, tuple[str, str]] = {}  # table -> (column, sequence)
        self._types: dict[str, dict[str, str]] = {}  # table -> column -> DuckDB type, for the list casts
        self._present: dict[str, set[str]] = {}
        self._absent: dict[str, set[str]] = {}
        self._keys: dict[tuple[str, str], dict[str, str | None]] = {}  # (table, column) -> key -> owner id
        self.writes = 0  # rows written or held back so far: did a refused write change anything?
        self._deferred: dict[str, Deferred] = {}
        # The roll-ups the writes change while a re-sort copies them (service.store.rollup_resort).
        self.rollup_journal = RollupJournal()

    # -- work done once per transaction --------------------------------------
    def deferred(self, name: str, factory: Callable[[], DeferredT]) -> DeferredT:
        """The transaction's one `name` task (made by factory the first time): the writes of a
        group add to it, the writer runs it once before COMMIT (Database.transaction)."""
        task = self._deferred.setdefault(name, factory())
        return cast(DeferredT, task)

    def take_deferred(self) -> list[Deferred]:
        tasks = list(self._deferred.values())
        self._deferred.clear()
        return tasks

    def wrote(self, table: str) -> None:
        """A repository changed rows of `table` directly (UPDATE, DELETE)."""
        self.writes += 1
        for known in [k for k in self._keys if k[0] == table]:
            del self._keys[known]

    # -- held-back inserts ---------------------------------------------------
    def add(
        self,
        table: str,
        columns: tuple[str, ...],
        row: Sequence[Any],
        entity_id: str | None = None,
        *,
        numbered_by: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Hold a row back. numbered_by (column, sequence): that column gets the sequence's
        next value at flush, in the order rows were added. keys: unique column -> the row's key."""
        self._rows.setdefault((table, columns), []).append(row)
        if numbered_by is not None:
            self._numbered[table] = numbered_by
        self.writes += 1
        if entity_id is not None:
            self.noted(table, entity_id, exists=True)
            for column, key in (keys or {}).items():
                self._keys.setdefault((table, column), {})[key] = entity_id

    def flush(self, cur: Cursor, table: str | None = None) -> None:
        """Send the held rows of `table` (of every table when None), one statement per table."""
        for key in [k for k in self._rows if table is None or k[0] == table]:
            rows = self._rows.pop(key)
            name, columns = key
            types = self._column_types(cur, name)
            values: list[Any] = [
                as_text(column) if types[c].startswith("DECIMAL") else list(column)
                for c, column in zip(columns, zip(*rows, strict=True), strict=True)
            ]
            names = ", ".join(map(quote, columns))
            if len(rows) == 1:  # one row: scalar parameters (a list of one 1 MB value binds ~5x slower)
                params = ", ".join(scalar_sql(types[c]) for c in columns)
                one = [column[0] for column in values]
                if name not in self._numbered:
                    cur.execute(f"INSERT INTO {quote(name)} ({names}) VALUES ({params})", one)
                else:
                    column, sequence = self._numbered[name]
                    cur.execute(
                        f"INSERT INTO {quote(name)} ({quote(column)}, {names}) VALUES (nextval(?), {params})",
                        [sequence, *one],
                    )
                continue
            lists = ", ".join(unnest_sql(types[c], quote(c)) for c in columns)
            if name not in self._numbered:
                cur.execute(f"INSERT INTO {quote(name)} ({names}) SELECT {lists}", values)
                continue
            # The group's numbers are drawn in the same statement: len(rows) values of the
            # sequence, the first plus each row's position. They are consecutive because the
            # writer is the only one drawing from it (one process per file, readers never
            # insert), and DuckDB does not promise to evaluate nextval in row order.
            column, sequence = self._numbered[name]
            cur.execute(
                f"INSERT INTO {quote(name)} ({quote(column)}, {names})"
                f" SELECT drawn.first + batch.position, {', '.join(f'batch.{quote(c)}' for c in columns)}"
                " FROM (SELECT min(nextval(?)) AS first FROM range(?)) AS drawn,"
                f" (SELECT {lists}, unnest(range(?)) AS position) AS batch",
                [sequence, len(rows), *values, len(rows)],
            )

    def _column_types(self, cur: Cursor, table: str) -> dict[str, str]:
        """Each list parameter is cast to its column's type: a list of None or of decimals of
        mixed scale would otherwise be typed from its values."""
        if table not in self._types:
            rows = cur.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?"
                " AND database_name = current_database() AND schema_name = current_schema()",
                [table],
            ).fetchall()
            self._types[table] = dict(rows)
        return self._types[table]

    # -- known ids and keys ------------------------------------------------------
    def prefetch(self, cur: Cursor, lookups: Iterable[Lookup]) -> None:
        """Learn in one query per table which of these ids exist, and per unique column which
        rows hold these keys (service.store.sql.in_list: from the index, or one list joined in)."""
        ids: dict[str, set[str]] = {}
        keys: dict[tuple[str, str], set[str]] = {}
        for lookup in lookups:
            if len(lookup) == 2:
                table, entity_id = lookup
                if self.exists(table, entity_id) is None:
                    ids.setdefault(table, set()).add(entity_id)
            elif self.find_key(*lookup) is Unknown:
                keys.setdefault((lookup[0], lookup[1]), set()).add(lookup[2])
        for table, wanted in ids.items():
            where, params = in_list("id", wanted)
            found = {row[0] for row in cur.execute(f"SELECT id FROM {quote(table)} WHERE {where}", params).fetchall()}
            self._present.setdefault(table, set()).update(found)
            self._absent.setdefault(table, set()).update(wanted - found)
        for (table, column), wanted in keys.items():
            where, params = in_list(column, wanted)
            owners = cur.execute(f"SELECT {quote(column)}, id FROM {quote(table)} WHERE {where}", params).fetchall()
            known = self._keys.setdefault((table, column), {})
            known.update(dict.fromkeys(wanted))
            known.update(owners)

    def exists(self, table: str, entity_id: str) -> bool | None:
        """True or False when known, None when the table must be asked."""
        if entity_id in self._present.get(table, ()):
            return True
        if entity_id in self._absent.get(table, ()):
            return False
        return None

    def find_key(self, table: str, column: str, key: str) -> object:
        """The id of the row holding this unique key, None when no row does, or Unknown."""
        return self._keys.get((table, column), {}).get(key, Unknown)

    def note_key(self, table: str, column: str, key: str, owner: str | None) -> None:
        """What the table answered about a key (it holds every row but the held-back ones,
        whose keys are known already)."""
        self._keys.setdefault((table, column), {})[key] = owner

    def noted(self, table: str, entity_id: str, *, exists: bool) -> None:
        """An insert (exists) or delete (not) of this transaction."""
        (self._present if exists else self._absent).setdefault(table, set()).add(entity_id)
        (self._absent if exists else self._present).get(table, set()).discard(entity_id)

    def inserted(self, table: str, ids: Iterable[str]) -> None:
        """Rows of `table` inserted directly (not held back) by this transaction."""
        self.wrote(table)
        self._present.setdefault(table, set()).update(ids)
        if absent := self._absent.get(table):
            absent.difference_update(self._present[table])

    def forget(self) -> None:
        """Drop what is known about ids and keys (after a write that bypassed the repositories)."""
        self._present.clear()
        self._absent.clear()
        self._keys.clear()

    def clear(self) -> None:
        """The transaction rolled back: drop held rows, what was known and deferred work. Column
        types too: a rolled-back restore or migration may have made a table that is gone again."""
        self._rows.clear()
        self._types.clear()
        self._deferred.clear()
        self.forget()


def unnest_sql(sql_type: str, name: str) -> str:
    """One list parameter as a column. Decimals arrive as text (see as_text) and are cast in SQL."""
    if sql_type.startswith("DECIMAL"):
        return f"unnest(?::VARCHAR[])::{sql_type} AS {name}"
    return f"unnest(?::{sql_type}[]) AS {name}"


def scalar_sql(sql_type: str) -> str:
    """One value as a parameter, typed as unnest_sql types a list of them."""
    return f"?::VARCHAR::{sql_type}" if sql_type.startswith("DECIMAL") else f"?::{sql_type}"


def as_text(values: Iterable[Any]) -> list[str | None]:
    """Decimals as fixed-point text: DuckDB 2.0 takes a Python Decimal parameter at ~6 us each,
    the same value as text cast in SQL at ~2 us (bench/ingest_bench.py). Exact: the text holds
    every digit, and values are at their column's scale already (service.model.values)."""
    return [None if v is None else format(v, "f") if isinstance(v, Decimal) else str(v) for v in values]


class TableAccess:
    """Statements on one table, run at once, or inside a writer transaction (with its batch)
    after the rows held back for that table: no statement misses a row. Repositories build on it."""

    def __init__(self, cursor: Cursor, table: str, batch: WriteBatch | None = None) -> None:
        self.cur = cursor
        self.table = table
        self.batch = batch  # the writer's: held-back inserts and known ids

    def _flushed(self) -> Cursor:
        """The cursor, once the rows held back for this table are sent."""
        if self.batch is not None:
            self.batch.flush(self.cur, self.table)
        return self.cur

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        return self._flushed().execute(sql, params)

    def _first(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        return first_row(self._flushed(), sql, params)

    def _change(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """An UPDATE or DELETE, counted: a refused write that changed nothing is told apart."""
        self._execute(sql, params)
        if self.batch is not None:
            self.batch.wrote(self.table)

    def _insert(
        self,
        columns: tuple[str, ...],
        row: Sequence[Any],
        entity_id: str | None = None,
        *,
        numbered_by: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Hold the row back (with a batch) or insert it now; numbered_by, keys: see WriteBatch.add
        (without a batch the column's DEFAULT numbers it)."""
        if self.batch is not None:
            self.batch.add(self.table, columns, row, entity_id, numbered_by=numbered_by, keys=keys)
        else:
            self.cur.execute(insert_sql(self.table, columns), row)
