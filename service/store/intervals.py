"""The balance intervals: UTC hours, days and ISO weeks (Monday 00:00), as DuckDB's
date_trunc makes them, shared by the roll-ups and portfolio_changes."""

from __future__ import annotations

from datetime import datetime, timedelta

# interval -> date_trunc unit. DuckDB's 'week' starts on Monday (ISO weeks).
INTERVALS = {"1h": "hour", "1d": "day", "1w": "week"}
LENGTHS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}


def bucket(interval: str, at: datetime) -> datetime:
    """The start of the UTC interval holding `at` (naive UTC, as stored), as date_trunc gives it."""
    if interval == "1h":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "1d" else day - timedelta(days=day.weekday())
