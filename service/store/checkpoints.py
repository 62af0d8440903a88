"""When the WAL is folded into the database file: in a pause between writes, not in the
middle of a burst (docs/decisions.md 40).

DuckDB checkpoints inside the COMMIT that takes the WAL past `checkpoint_threshold` (16 MiB
by default). A checkpoint writes the changed row groups and every index whole, so it costs
more as the tables grow (80-200 ms at 150,000 balance rows); during a sustained ingest one
came every fourth request. Here the threshold is raised to BURST_WAL, so a burst commits
without checkpoints, and the writer thread checkpoints once writes have paused for
IDLE_SECONDS with more than IDLE_WAL in the WAL. A committed write is in the WAL either way
(every commit syncs it); a larger WAL only costs a longer replay after a crash (124 MB
replayed in 0.8 s here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import duckdb

from service.store.sql import Cursor

log = logging.getLogger(__name__)
BURST_WAL = "256MiB"  # DuckDB's own checkpoint inside a commit, past this much WAL
IDLE_WAL = 16 * 2**20  # bytes of WAL worth a checkpoint once writes pause
IDLE_SECONDS = 0.5


class IdleCheckpoints:
    """Checkpoints run on the writer thread between bursts: queued on its executor, behind
    any write under way and before any that arrives meanwhile, on its cursor."""

    def __init__(self, path: Path, writer: Executor, cursor: Cursor, *, idle_wal: int = IDLE_WAL) -> None:
        self.wal = path.with_name(path.name + ".wal")
        self.writer = writer
        self.cursor = cursor
        self.idle_wal = idle_wal
        self.checkpoints = 0  # run since start
        self.closed = False
        # DuckDB refuses CHECKPOINT while another transaction has written or may write (a
        # re-sort's copy, service.store.rollup_resort): it holds checkpoints meanwhile.
        self.held = 0
        self._timer: asyncio.TimerHandle | None = None

    @staticmethod
    def configure(con: Cursor) -> None:
        con.execute(f"SET checkpoint_threshold = '{BURST_WAL}'")

    def writes_done(self, loop: asyncio.AbstractEventLoop, writing: Callable[[], bool]) -> None:
        """On the event loop, after the writer drained its queue: look again in IDLE_SECONDS,
        unless more writes come first (each drain moves the look)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None if self.closed else loop.call_later(IDLE_SECONDS, self._due, writing)

    def close(self) -> None:
        """No more checkpoints from here (Database.close checkpoints last). Any thread: a
        timer still set finds this and does nothing."""
        self.closed = True

    def _due(self, writing: Callable[[], bool]) -> None:
        self._timer = None
        if self.closed or self.held or writing() or self._wal_bytes() < self.idle_wal:
            return
        with contextlib.suppress(RuntimeError):  # the writer is shutting down: close() checkpoints
            self.writer.submit(self._run)

    def _run(self) -> None:
        """A failure (a full disk) leaves the WAL as it is: the pause after the next writes tries
        again, close() checkpoints, and DuckDB's own threshold still applies."""
        try:
            self.cursor.execute("CHECKPOINT")
            self.checkpoints += 1
        except duckdb.Error as exc:
            log.warning("checkpoint between writes failed (%s); the WAL stays until the next one", exc)

    def _wal_bytes(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0
