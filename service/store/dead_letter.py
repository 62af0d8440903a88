"""Outbox entries the relay can never publish, kept with the reason (service.sync.relay).

Health counts them, `ekko sync verify` lists them and `ekko sync repair` (which rewrites
KV from DuckDB) empties the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import msgspec

from schema.common import encode
from service.model.columns import as_utc, utc_now
from service.store.database import Cursor
from service.store.outbox import CHANGE_COLUMNS, Change, change_row

SAMPLE = 10


class DeadLetter(msgspec.Struct):
    """One entry as verify shows it (the record itself stays in the table)."""

    seq: int
    entity: str
    id: str
    action: str
    version: int
    occurred_at: datetime
    error: str


class DeadLetterRepository:
    def __init__(self, cursor: Cursor) -> None:
        self.cur = cursor

    def add(self, dead: Sequence[tuple[Change, str]]) -> None:
        """One row per outbox entry (seq): the change, or the dead members of a batch entry
        as a batch entry of their own (their records, the first one's place and error)."""
        failed_at = utc_now().replace(tzinfo=None)
        columns = ", ".join(("seq", *CHANGE_COLUMNS, "error", "failed_at"))
        marks = ", ".join("?" * (len(CHANGE_COLUMNS) + 3))
        by_entry: dict[int, list[tuple[Change, str]]] = {}
        for change, error in dead:
            by_entry.setdefault(change.seq, []).append((change, error))
        for seq, members in by_entry.items():
            change, error = members[0]
            if len(members) > 1:
                data = encode([msgspec.Raw(c.data or b"null") for c, _ in members])
                change = dataclasses.replace(change, entity_id="", data=data, changes=len(members))
                error = f"{error} (and {len(members) - 1} more changes of this entry)"
            self.cur.execute(
                f"INSERT OR IGNORE INTO outbox_dead_letter ({columns}) VALUES ({marks})",
                [seq, *change_row(change), error, failed_at],
            )

    def count(self) -> int:
        """Changes that could not be published (a batch row counts its members)."""
        (count,) = self.cur.execute("SELECT coalesce(sum(coalesce(changes, 1)), 0) FROM outbox_dead_letter").fetchall()[
            0
        ]
        return int(count)

    def sample(self, limit: int = SAMPLE) -> list[DeadLetter]:
        rows = self.cur.execute(
            "SELECT seq, entity, entity_id, action, version, occurred_at, error"
            " FROM outbox_dead_letter ORDER BY seq LIMIT ?",
            [limit],
        ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], r[4], as_utc(r[5]), r[6]) for r in rows]

    def clear(self) -> int:
        count = self.count()
        self.cur.execute("DELETE FROM outbox_dead_letter")
        return count
