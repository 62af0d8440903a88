"""The integrity log: the latest integrity check (a migration's validation) as JSON.

Kept in DuckDB, not in memory, because the check may run in `ekko migrate` (another
process, service stopped) and health must show it once the service starts."""

from __future__ import annotations

from datetime import UTC, datetime

from service.store.sql import Cursor, first_row

KEEP = 100  # checks kept; only the latest is read, the rest are history for an operator


def record_integrity(cur: Cursor, checked_at: datetime, ok: bool, result_json: bytes) -> None:
    at = checked_at.astimezone(UTC).replace(tzinfo=None) if checked_at.tzinfo else checked_at  # stored as UTC
    cur.execute("INSERT INTO integrity_log VALUES (?, ?, ?)", [at, ok, result_json.decode()])
    cur.execute(
        "DELETE FROM integrity_log WHERE checked_at < ("
        " SELECT min(checked_at) FROM (SELECT checked_at FROM integrity_log ORDER BY checked_at DESC LIMIT ?))",
        [KEEP],
    )


def latest_integrity(cur: Cursor) -> bytes | None:
    """The JSON of the latest check, or None when none ran."""
    row = first_row(cur, "SELECT result FROM integrity_log ORDER BY checked_at DESC LIMIT 1")
    return None if row is None else str(row[0]).encode()
