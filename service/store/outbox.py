"""The outbox table: changes waiting to be relayed to JetStream, in commit order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schema.events import Action
from service.model.columns import as_utc
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
    data: bytes | None  # the encoded record; None on delete
    seq: int = 0


# The columns a change is stored in (the outbox, and its dead letters beside their own).
CHANGE_COLUMNS = ("event_id", "entity", "entity_id", "action", "version", "occurred_at", "data")


def change_row(change: Change) -> list[object]:
    """The values of CHANGE_COLUMNS for one change (times stored as naive UTC)."""
    return [
        change.event_id,
        change.entity,
        change.entity_id,
        change.action,
        change.version,
        as_utc(change.occurred_at).replace(tzinfo=None),
        change.data,
    ]


class OutboxRepository(TableAccess):
    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, "outbox", batch)  # writer transactions hold entries back until COMMIT

    def add(self, change: Change) -> None:
        """Queue one change; its seq follows the order changes are added, in a batch too."""
        self._insert(CHANGE_COLUMNS, change_row(change), numbered_by=("seq", "outbox_seq"))

    def pending(self, limit: int) -> list[Change]:
        rows = self._execute(
            "SELECT seq, event_id, entity, entity_id, action, version, occurred_at, data"
            " FROM outbox ORDER BY seq LIMIT ?",
            [limit],
        ).fetchall()
        return [
            Change(
                seq=r[0],
                event_id=r[1],
                entity=r[2],
                entity_id=r[3],
                action=r[4],
                version=r[5],
                occurred_at=as_utc(r[6]),
                data=None if r[7] is None else bytes(r[7]),
            )
            for r in rows
        ]

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
