"""Unit of work: repositories on one cursor inside one writer transaction, plus the
changes it made. Each change is written to the outbox in the same transaction,
so a committed change is never lost to JetStream and a rolled-back one never
reaches it."""

from __future__ import annotations

import uuid

from schema.common import Record, encode
from schema.events import Action
from service.model.columns import utc_now
from service.model.registry import EntitySpec
from service.store.database import Cursor
from service.store.outbox import Change, OutboxRepository
from service.store.repository import Repository
from service.store.write_batch import WriteBatch


class UnitOfWork:
    def __init__(self, cursor: Cursor, *, outbox: bool, batch: WriteBatch | None = None) -> None:
        self.cursor = cursor
        self.batch = batch
        self.changes: list[Change] = []
        self._outbox = OutboxRepository(cursor, batch) if outbox else None
        self._repos: dict[str, Repository] = {}

    def repo(self, spec: EntitySpec) -> Repository:
        if spec.name not in self._repos:
            self._repos[spec.name] = Repository(spec, self.cursor, self.batch)
        return self._repos[spec.name]

    def record(self, spec: EntitySpec, action: Action, record: Record) -> Change:
        """Note a change (and queue it in the outbox when sync is on)."""
        change = Change(
            event_id=str(uuid.uuid4()),
            entity=spec.name,
            action=action,
            entity_id=record.id,
            version=record.version,
            occurred_at=utc_now(),
            data=None if action == "deleted" else encode(record),
        )
        if self._outbox is not None:
            self._outbox.add(change)
        self.changes.append(change)
        return change
