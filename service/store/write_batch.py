"""What the writer's current transaction holds back and already knows.

From Python every DuckDB statement costs about 0.5 ms, while a row of a
multi-row VALUES costs under 0.1 ms and an `IN (...)` lookup of many ids about
as much as one (bench/writer_probe.py). A group commit runs many creates in one
transaction, so the writer

- holds their INSERTs back and sends one multi-row INSERT per table: whoever
  reads or changes a table flushes it first (the repositories do), and the
  writer flushes everything before COMMIT, so no statement misses a row; a
  table numbered by a sequence (the outbox) gets its numbers drawn at flush and
  handed out in the order rows were added;
- looks up, in one query per table, every parent id the group's writes declared
  they will check, and keeps track of the rows the group inserts and deletes, so
  `Repository.exists` answers from memory for those ids.

Only writes that go through repositories keep this exact; the writer forgets
what it knows around any write that takes the raw cursor (UnitOfWork.cursor).
`TableAccess` is the one place that sends a table's held-back rows before a
statement on it; the repositories build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast

from service.store.sql import Cursor, first_row, insert_sql, quote

Lookup = tuple[str, str]  # (table, id)


class Deferred(Protocol):
    """Work a group's writes share, run once at the end of its transaction with a unit of
    work of its own (service.store.uow.UnitOfWork)."""

    def run(self, uow: Any) -> None: ...


DeferredT = TypeVar("DeferredT", bound=Deferred)


class WriteBatch:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, tuple[str, ...]], list[Sequence[Any]]] = {}
        self._numbered: dict[str, tuple[str, str]] = {}  # table -> (column, sequence)
        self._present: dict[str, set[str]] = {}
        self._absent: dict[str, set[str]] = {}
        self.writes = 0  # rows written or held back so far: did a refused write change anything?
        self._deferred: dict[str, Deferred] = {}

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

    def wrote(self) -> None:
        """A repository changed rows directly (UPDATE, DELETE)."""
        self.writes += 1

    # -- held-back inserts ---------------------------------------------------
    def add(
        self,
        table: str,
        columns: tuple[str, ...],
        row: Sequence[Any],
        entity_id: str | None = None,
        *,
        numbered_by: tuple[str, str] | None = None,
    ) -> None:
        """Hold a row back. numbered_by (column, sequence): that column gets the sequence's
        next value at flush, in the order rows were added."""
        self._rows.setdefault((table, columns), []).append(row)
        if numbered_by is not None:
            self._numbered[table] = numbered_by
        self.writes += 1
        if entity_id is not None:
            self.noted(table, entity_id, exists=True)

    def flush(self, cur: Cursor, table: str | None = None) -> None:
        """Send the held rows of `table` (of every table when None)."""
        for key in [k for k in self._rows if table is None or k[0] == table]:
            rows = self._rows.pop(key)
            name, columns = key
            if name in self._numbered:
                # Drawn explicitly and sorted: DuckDB does not promise to evaluate a
                # DEFAULT nextval in VALUES order.
                column, sequence = self._numbered[name]
                drawn = cur.execute("SELECT nextval(?) FROM range(?)", [sequence, len(rows)]).fetchall()
                rows = [(number, *row) for (number,), row in zip(sorted(drawn), rows, strict=True)]
                columns = (column, *columns)
            cur.execute(insert_sql(name, columns, len(rows)), [v for row in rows for v in row])

    # -- known ids -------------------------------------------------------------
    def prefetch(self, cur: Cursor, lookups: Iterable[Lookup]) -> None:
        """Learn in one query per table which of these ids exist."""
        wanted: dict[str, set[str]] = {}
        for table, entity_id in lookups:
            if self.exists(table, entity_id) is None:
                wanted.setdefault(table, set()).add(entity_id)
        for table, ids in wanted.items():
            marks = ", ".join("?" * len(ids))
            rows = cur.execute(f"SELECT id FROM {quote(table)} WHERE id IN ({marks})", list(ids)).fetchall()
            found = {row[0] for row in rows}
            self._present.setdefault(table, set()).update(found)
            self._absent.setdefault(table, set()).update(ids - found)

    def exists(self, table: str, entity_id: str) -> bool | None:
        """True or False when known, None when the table must be asked."""
        if entity_id in self._present.get(table, ()):
            return True
        if entity_id in self._absent.get(table, ()):
            return False
        return None

    def noted(self, table: str, entity_id: str, *, exists: bool) -> None:
        """An insert (exists) or delete (not) of this transaction."""
        (self._present if exists else self._absent).setdefault(table, set()).add(entity_id)
        (self._absent if exists else self._present).get(table, set()).discard(entity_id)

    def forget(self) -> None:
        """Drop what is known about ids (after a write that bypassed the repositories)."""
        self._present.clear()
        self._absent.clear()

    def clear(self) -> None:
        """The transaction rolled back: drop held rows, known ids and deferred work."""
        self._rows.clear()
        self._deferred.clear()
        self.forget()


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
            self.batch.wrote()

    def _insert(
        self,
        columns: tuple[str, ...],
        row: Sequence[Any],
        entity_id: str | None = None,
        *,
        numbered_by: tuple[str, str] | None = None,
    ) -> None:
        """Hold the row back (with a batch) or insert it now; numbered_by: see WriteBatch.add
        (without a batch the column's DEFAULT numbers it)."""
        if self.batch is not None:
            self.batch.add(self.table, columns, row, entity_id, numbered_by=numbered_by)
        else:
            self.cur.execute(insert_sql(self.table, columns), row)
