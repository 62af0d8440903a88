"""The outbox table: changes waiting to be relayed to JetStream, in commit order.

An entry is one change, or (`changes` set) the creates of one batch write of one entity:
its data is the JSON array of the created records, and `expand` turns it into the
changes it stands for, each as a create of its own would have been (docs/decisions.md,
"One outbox entry per ingest")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from schema.events import Action
from service.model.columns import as_utc, naive_utc
from service.model.ids import derived_ids
from service.store.sql import Cursor
from service.store.write_batch import TableAccess, WriteBatch


@dataclass(frozen=True)
class Change:
    """One committed change of one entity row, as relayed to KV and the events stream."""

    event_id: str
    entity: str
    action: Action
    entity_id: str
    version: int
    occurred_at: datetime
    data: bytes | None  # the encoded record after the change; None on delete
    seq: int = 0
    before: bytes | None = None  # the encoded record before the change; None on create
    # One write (one caller's request) is one transaction of events: its id, this change's
    # place in it and how many it holds. Rows queued before these columns existed have none:
    # they relay as a transaction of their own (tx_id = event_id).
    tx_id: str | None = None
    tx_index: int = 0
    tx_count: int = 1
    correlation_id: str | None = None  # from the request that made the change
    # Set on an entry that stands for this many creates (tx_index .. tx_index + changes - 1 of
    # its transaction): data is the JSON array of their records, entity_id is empty, and
    # event_id seeds the members' event ids. None: the entry is one change.
    changes: int | None = None


# The columns a change is stored in (the outbox, and its dead letters beside their own).
CHANGE_COLUMNS = (
    "event_id",
    "entity",
    "entity_id",
    "action",
    "version",
    "occurred_at",
    "data",
    "before_data",
    "tx_id",
    "tx_index",
    "tx_count",
    "correlation_id",
    "changes",
)


def change_row(change: Change) -> list[object]:
    """The values of CHANGE_COLUMNS for one change (times stored as naive UTC)."""
    return [
        change.event_id,
        change.entity,
        change.entity_id,
        change.action,
        change.version,
        naive_utc(change.occurred_at),
        change.data,
        change.before,
        change.tx_id,
        change.tx_index,
        change.tx_count,
        change.correlation_id,
        change.changes,
    ]


def change_of_row(seq: int, row: Sequence[Any]) -> Change:
    """The change stored as `seq` followed by the values of CHANGE_COLUMNS."""
    event_id, entity, entity_id, action, version, occurred_at, data, before, tx_id, tx_index, tx_count, corr, n = row
    return Change(
        seq=seq,
        event_id=str(event_id),
        entity=str(entity),
        action=action,
        entity_id=str(entity_id),
        version=int(version),
        occurred_at=as_utc(occurred_at),
        data=None if data is None else bytes(data),
        before=None if before is None else bytes(before),
        tx_id=None if tx_id is None else str(tx_id),
        tx_index=0 if tx_index is None else int(tx_index),
        tx_count=1 if tx_count is None else int(tx_count),
        correlation_id=None if corr is None else str(corr),
        changes=None if n is None else int(n),
    )


class _Id(msgspec.Struct):
    id: str


_RECORDS = msgspec.json.Decoder(list[msgspec.Raw])
_IDS = msgspec.json.Decoder(list[_Id])


def batch_ids(entry: Change) -> list[str]:
    """The ids of the records an entry holds (one, or a batch's)."""
    if entry.changes is None:
        return [entry.entity_id]
    return [r.id for r in _IDS.decode(entry.data or b"[]")]


def expand(entry: Change) -> list[Change]:
    """The changes an entry stands for: itself, or one create per record of a batch entry, with
    the event id, KV value and transaction place the create would have had on its own. The
    event ids are derived from the entry's, so a relay that publishes a batch again sends
    the same ids (JetStream drops the repeats within its duplicate window)."""
    if entry.changes is None:
        return [entry]
    records = _RECORDS.decode(entry.data or b"[]")
    ids = batch_ids(entry)
    event_ids = derived_ids(entry.event_id, len(records))
    return [
        Change(
            event_id=event_id,
            entity=entry.entity,
            action=entry.action,
            entity_id=entity_id,
            version=entry.version,
            occurred_at=entry.occurred_at,
            data=bytes(record),
            seq=entry.seq,
            tx_id=entry.tx_id,
            tx_index=entry.tx_index + i,
            tx_count=entry.tx_count,
            correlation_id=entry.correlation_id,
        )
        for i, (event_id, entity_id, record) in enumerate(zip(event_ids, ids, records, strict=True))
    ]


class OutboxRepository(TableAccess):
    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, "outbox", batch)  # writer transactions hold entries back until COMMIT

    def add(self, change: Change) -> None:
        """Queue one change; its seq follows the order changes are added, in a batch too."""
        self._insert(CHANGE_COLUMNS, change_row(change), numbered_by=("seq", "outbox_seq"))

    def pending(self, limit: int, after: int = 0) -> list[Change]:
        """The oldest entries past seq `after`, whole, holding about `limit` changes (at least
        one entry), expanded."""
        sizes = self._execute(
            "SELECT seq, coalesce(changes, 1) FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit]
        ).fetchall()
        if not sizes:
            return []
        last, total = sizes[0][0], 0
        for seq, size in sizes:
            if total and total + size > limit:
                break
            last, total = seq, total + size
        columns = ", ".join(CHANGE_COLUMNS)
        rows = self._execute(
            f"SELECT seq, {columns} FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq", [after, last]
        )
        return [change for r in rows.fetchall() for change in expand(change_of_row(r[0], r[1:]))]

    def pending_ids(self, entity: str) -> set[str]:
        """Ids of this entity with changes still waiting here (batch entries' records included)."""
        rows = self._execute(
            "SELECT DISTINCT entity_id FROM outbox WHERE entity = ? AND changes IS NULL", [entity]
        ).fetchall()
        batches = self._execute(
            f"SELECT seq, {', '.join(CHANGE_COLUMNS)} FROM outbox WHERE entity = ? AND changes IS NOT NULL", [entity]
        ).fetchall()
        return {row[0] for row in rows} | {i for r in batches for i in batch_ids(change_of_row(r[0], r[1:]))}

    def remove_through(self, seq: int) -> None:
        """Forget every entry up to and including seq: JetStream has acknowledged them."""
        self._change("DELETE FROM outbox WHERE seq <= ?", [seq])

    def backlog(self) -> tuple[int, datetime | None]:
        """Changes waiting (a batch entry counts its members) and the oldest one's time."""
        count, oldest = self._execute(
            "SELECT coalesce(sum(coalesce(changes, 1)), 0), min(occurred_at) FROM outbox"
        ).fetchall()[0]
        return int(count), None if oldest is None else as_utc(oldest)

    def clear(self) -> int:
        count = self.backlog()[0]
        self._change("DELETE FROM outbox")
        return count
