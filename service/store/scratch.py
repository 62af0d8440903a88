"""The scratch database: an in-memory DuckDB database attached to the service's own, where a
bulk write's inputs are built on a pool thread before the write queues for the writer
(docs/decisions.md 45).

Attached databases belong to the DuckDB instance, so every cursor sees them, unlike
temporary tables (one connection's). A table made and committed here before a write is
queued is in the snapshot of the writer's transaction, which reads it and writes only the
main database (a DuckDB transaction may write one database). Nothing here is logged or
checkpointed, and nothing outlives the process: each table belongs to one request, which
drops it once its write is answered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from service.store.sql import Cursor

SCRATCH = "ekko_scratch"
ATTACH = f"ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}"
_numbers = itertools.count(1)  # next() on a count is atomic: pool threads share it


def scratch_tables(*kinds: str) -> tuple[str, ...]:
    """Qualified names, unused so far in this process, for one request's tables of each kind."""
    number = next(_numbers)
    return tuple(f"{SCRATCH}.{kind}_{number}" for kind in kinds)


def drop(cur: Cursor, tables: Iterable[str]) -> None:
    for table in tables:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
