"""Which roll-ups the writes change while a re-sort copies `balance_rollups`
(service.store.rollup_resort, docs/decisions.md 55).

The copy reads the table as it was when the re-sort began; before the sorted copy replaces
the table, the roll-ups changed since then are taken again from the live table. Each write
that changes roll-ups names them here, in a temporary table of the writer's cursor, inside
its own transaction: a write rolled back takes its entries with it. Keys are
(wallet_id, interval, start); a NULL interval stands for all of a wallet's roll-ups (a
deleted wallet). A change the journal cannot name (a migration, restore or reset rewrites
the whole table) makes it `broken`, and the re-sort gives up.

Writer thread only; every method is a no-op while no re-sort runs (or once it is broken).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from service.store.intervals import INTERVALS, bucket
from service.store.sql import Cursor

JOURNAL = "rollup_journal"  # temp table: the writer's cursor alone sees it


class RollupJournal:
    def __init__(self) -> None:
        self.active = False
        self.broken = False
        self.named = 0  # entries added since start (rolled-back ones too)
        self.limit = 0

    def start(self, cur: Cursor, limit: int) -> None:
        """From here each write's roll-ups are named, up to `limit` entries: past them the
        journal is broken and stops growing (a re-sort waiting behind a long burst of writes
        would otherwise keep collecting)."""
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {JOURNAL} (wallet_id VARCHAR, interval VARCHAR, start TIMESTAMP)")
        self.active, self.broken, self.named, self.limit = True, False, 0, limit

    def _added(self, count: int) -> None:
        self.named += count
        if self.named > self.limit:
            self.everything()

    def stop(self, cur: Cursor) -> None:
        self.active = False
        cur.execute(f"DROP TABLE IF EXISTS temp.{JOURNAL}")

    # -- what the writes report ------------------------------------------------
    def rows_at(self, cur: Cursor, touched: Iterable[tuple[str, datetime]]) -> None:
        """The roll-ups holding these (wallet, naive UTC time) pairs: one per interval each.
        Worked out only while a re-sort runs (the pairs may be a lazy iterable)."""
        if not self.active:
            return
        wallets, intervals, starts = [], [], []
        for wallet, interval, start in {(w, i, bucket(i, at)) for w, at in touched for i in INTERVALS}:
            wallets.append(wallet)
            intervals.append(interval)
            starts.append(start)
        if wallets:
            cur.execute(
                f"INSERT INTO {JOURNAL} SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::TIMESTAMP[])",
                [wallets, intervals, starts],
            )
            self._added(len(wallets))

    def keys_of(self, cur: Cursor, table: str) -> None:
        """The keys of the roll-ups in `table` (its columns wallet_id, interval, start)."""
        if self.active:
            inserted = cur.execute(f"INSERT INTO {JOURNAL} SELECT wallet_id, interval, start FROM {table}").fetchall()
            self._added(int(inserted[0][0]) if inserted else 0)

    def wallet(self, cur: Cursor, wallet_id: str) -> None:
        if self.active:
            cur.execute(f"INSERT INTO {JOURNAL} VALUES (?, NULL, NULL)", [wallet_id])
            self._added(1)

    def everything(self) -> None:
        """Roll-ups changed that cannot be named (or too many): the re-sort gives up. The
        journal stops recording; `stop` still drops its table."""
        if self.active:
            self.broken, self.active = True, False
