"""Unit of work: what a function given to `Database.write` gets. Repositories on the
writer's cursor inside one transaction, sharing the writer's batch (held-back inserts,
known ids: service.store.write_batch), plus the changes it made. Each change is
written to the outbox in the same transaction, so a committed change is never lost
to JetStream and a rolled-back one never reaches it.

One unit of work is one caller's write: its changes form one event transaction (one
tx_id, numbered 0..n-1), even when group commit runs it in a DuckDB transaction with
other callers' writes. The count is known only once the work is done, so the changes
reach the outbox in `seal`, which the writer calls after the work returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from schema.common import Record, encode
from schema.events import Action
from service.model.columns import utc_now
from service.model.ids import new_id
from service.model.registry import EntitySpec
from service.store.outbox import Change, OutboxRepository
from service.store.repository import Repository
from service.store.search import SearchRefresh, searched_fields
from service.store.sql import Cursor
from service.store.write_batch import DeferredT, WriteBatch

StoreT = TypeVar("StoreT")

T = TypeVar("T")


class UnitOfWork:
    def __init__(
        self,
        cursor: Cursor,
        batch: WriteBatch | None = None,
        *,
        fill_outbox: bool = True,
        correlation_id: str | None = None,
    ) -> None:
        self._cursor = cursor
        self.batch = batch
        self.fill_outbox = fill_outbox  # off when nothing relays the outbox (ENABLE_JETSTREAM_SYNC=false)
        self.correlation_id = correlation_id  # of the request this write serves, for its events
        self.tx_id = new_id()
        self.bypassed = False  # the raw cursor was handed out: see `cursor`
        # The changes made, in order. `seal` completes them in place (tx_count), so a list
        # taken inside the work shows them complete once the write has committed.
        self.changes: list[Change] = []
        self.count = 0  # changes made: a batch entry among `changes` stands for several
        self._outbox: OutboxRepository | None = None
        self._repos: dict[str, Repository] = {}
        self._search: SearchRefresh | None = None  # search rows this write changed, replaced in seal

    @property
    def cursor(self) -> Cursor:
        """The transaction's cursor, for SQL of one's own (migration, restore, reset). Raw SQL
        may read or change any row, so every held-back row is sent first, and from here on
        this unit of work neither holds rows back nor answers from what the writer knew
        (the writer forgets it once this write is done)."""
        if self.batch is not None:
            self.batch.flush(self._cursor)
            self.batch.forget()
            # Roll-ups may change unnamed: a re-sort under way gives up (service.store.rollup_resort).
            self.batch.rollup_journal.everything()
            self.batch = None
            self._outbox = None
            self._repos.clear()
        self.bypassed = True
        return self._cursor

    def repo(self, spec: EntitySpec) -> Repository:
        if spec.name not in self._repos:
            self._repos[spec.name] = Repository(spec, self._cursor, self.batch)
        return self._repos[spec.name]

    def store(self, factory: Callable[[Cursor, WriteBatch | None], StoreT]) -> StoreT:
        """A store of one's own (SQL beyond the generic repository) on this transaction's
        cursor, sharing its batch so held-back rows are sent before its statements."""
        return factory(self._cursor, self.batch)

    def deferred(self, name: str, factory: Callable[[], DeferredT]) -> DeferredT:
        """The transaction's shared `name` task (service.store.write_batch.WriteBatch.deferred).
        Without a batch there is nothing to share: the caller gets a fresh one to run itself."""
        return factory() if self.batch is None else self.batch.deferred(name, factory)

    @property
    def outbox(self) -> OutboxRepository:
        if self._outbox is None:
            self._outbox = OutboxRepository(self._cursor, self.batch)
        return self._outbox

    def record(self, spec: EntitySpec, action: Action, record: Record, before: Record | None = None) -> None:
        """Note a change: `record` as it is now (the row deleted, on delete) and, on update,
        `before`, the row as it was. It reaches the outbox in `seal`."""
        after, before = (None, record) if action == "deleted" else (record, before)
        if (fields := searched_fields(spec.name)) and (
            before is None or after is None or any(getattr(before, f) != getattr(after, f) for f in fields)
        ):
            self._search = self._search or SearchRefresh()
            self._search.note(spec.name, record, created=before is None, deleted=after is None)
        self.changes.append(
            Change(
                event_id=new_id(),
                entity=spec.name,
                action=action,
                entity_id=record.id,
                version=record.version,
                occurred_at=utc_now(),
                data=None if after is None else encode(after),
                before=None if before is None else encode(before),
                tx_id=self.tx_id,
                tx_index=self.count,
                correlation_id=self.correlation_id,
            )
        )
        self.count += 1

    def record_created(self, spec: EntitySpec, records: bytes, count: int) -> None:
        """Note `count` creates of `spec` at once: `records` is the JSON array of the created
        records, each encoded as `record` would (one msgspec call for all of them). They reach
        the outbox as one entry that the relay expands into one create each
        (service.store.outbox.expand), with the event ids and places they would have had."""
        self.changes.append(
            Change(
                event_id=new_id(),
                entity=spec.name,
                action="created",
                entity_id="",
                version=1,
                occurred_at=utc_now(),
                data=records,
                tx_id=self.tx_id,
                tx_index=self.count,
                correlation_id=self.correlation_id,
                changes=count,
            )
        )
        self.count += count

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """work(self), then `seal`: what the writer runs for each write."""
        result = work(self)
        self.seal()
        return result

    def seal(self) -> None:
        """The work is done: count its changes into each and queue them in the outbox (when sync is on)."""
        count = self.count
        for change in self.changes:
            # Set in place: until sealed, the changes are this unit's alone (nothing has seen them),
            # and a copy of each cost ~8 us: a tenth of an ingest's Python per row.
            object.__setattr__(change, "tx_count", count)
        if self.fill_outbox:
            for change in self.changes:
                self.outbox.add(change)
        if self._search is not None:
            # Without a batch nothing runs deferred work before COMMIT (a unit of work made
            # outside the writer, or one that took the raw cursor), so the write refreshes its
            # own rows now; with one, the group's writes share one refresh (UnitOfWork.deferred).
            if self.batch is None:
                self._search.run(self)
            else:
                self.deferred("search", SearchRefresh).merge(self._search)
            self._search = None
