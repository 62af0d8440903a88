"""The outbox table: changes waiting to be relayed to JetStream, in commit order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schema.events import Action
from service.model.columns import as_utc, naive_utc
from service.store.sql import Cursor, count_rows
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
    ]


def change_of_row(seq: int, row: Sequence[Any]) -> Change:
    """The change stored as `seq` followed by the values of CHANGE_COLUMNS."""
    event_id, entity, entity_id, action, version, occurred_at, data, before, tx_id, tx_index, tx_count, corr = row
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
    )


class OutboxRepository(TableAccess):
    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, "outbox", batch)  # writer transactions hold entries back until COMMIT

    def add(self, change: Change) -> None:
        """Queue one change; its seq follows the order changes are added, in a batch too."""
        self._insert(CHANGE_COLUMNS, change_row(change), numbered_by=("seq", "outbox_seq"))

    def pending(self, limit: int) -> list[Change]:
        rows = self._execute(f"SELECT seq, {', '.join(CHANGE_COLUMNS)} FROM outbox ORDER BY seq LIMIT ?", [limit])
        return [change_of_row(r[0], r[1:]) for r in rows.fetchall()]

    def pending_ids(self, entity: str) -> set[str]:
        """Ids of this entity with changes still waiting here."""
        rows = self._execute("SELECT DISTINCT entity_id FROM outbox WHERE entity = ?", [entity]).fetchall()
        return {row[0] for row in rows}

    def remove_through(self, seq: int) -> None:
        """Forget every entry up to and including seq: JetStream has acknowledged them."""
        self._change("DELETE FROM outbox WHERE seq <= ?", [seq])

    def backlog(self) -> tuple[int, datetime | None]:
        count, oldest = self._execute("SELECT count(*), min(occurred_at) FROM outbox").fetchall()[0]
        return int(count), None if oldest is None else as_utc(oldest)

    def clear(self) -> int:
        count = count_rows(self._flushed(), self.table)
        self._change("DELETE FROM outbox")
        return count
