"""portfolio_changes, balance_latest, balance_rollups and wallets.balance, kept by the writer
through random groups of balance creates, updates, deletes and ingests, wallet chain changes
and wallet deletes (rows out of order, equal timestamps, null fiat values), equal what plain
Python derives from the surviving rows and what a rebuild derives. The writes go through the
entity services and the group commit, as the service runs them (a group's balance work is
deferred to the end of its transaction)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from schema.wallet_balances import WalletBalance
from service.store.balances import rebuild
from service.store.database import Cursor, Database
from service.store.intervals import bucket
from tests.balance_world import World, derived_tables

INTERVALS = ("1h", "1d", "1w")


def expected(rows: dict[str, WalletBalance], chains: dict[str, str]) -> dict[tuple[str, str, datetime], int]:
    """Per (chain, interval, start): the sum over the chain's wallets of the interval's last fiat
    value (null as 0) minus the one of the wallet's previous interval with rows, times 10^8."""
    out: dict[tuple[str, str, datetime], int] = {}
    for wallet, chain in chains.items():
        mine = sorted(
            (r for r in rows.values() if r.wallet_id == wallet), key=lambda r: (r.timestamp.replace(tzinfo=None), r.id)
        )
        for interval in INTERVALS:
            last: dict[datetime, int] = {}
            for r in mine:
                fiat = r.fiat_value or Decimal(0)
                last[bucket(interval, r.timestamp.replace(tzinfo=None))] = int(fiat * 10**8)
            previous = 0
            for start in sorted(last):
                key = (chain, interval, start)
                out[key] = out.get(key, 0) + last[start] - previous
                previous = last[start]
    return {k: v for k, v in out.items() if v}


def newest(rows: dict[str, WalletBalance]) -> dict[str, tuple[str, datetime, Decimal | None]]:
    out: dict[str, WalletBalance] = {}
    for r in sorted(rows.values(), key=lambda r: (r.timestamp, r.id)):
        out[r.wallet_id] = r
    return {w: (r.id, r.timestamp.replace(tzinfo=None), r.fiat_value) for w, r in out.items()}


def latest(cur: Cursor) -> dict[str, tuple[str, datetime, Decimal | None]]:
    rows = cur.execute("SELECT wallet_id, id, timestamp, fiat_value FROM balance_latest").fetchall()
    return {w: (i, t, f) for w, i, t, f in rows}


def latest_balances(cur: Cursor) -> dict[str, tuple[Any, ...]]:
    rows = cur.execute("SELECT wallet_id, id, timestamp, balance FROM balance_latest").fetchall()
    return {r[0]: r for r in rows}


def stored(cur: Cursor) -> dict[tuple[str, str, datetime], int]:
    rows = cur.execute("SELECT blockchain_symbol, interval, start, units, fraction FROM portfolio_changes").fetchall()
    assert all(0 <= f < 10**8 for *_, f in rows), "fractions are normalized"
    assert all(u or f for *_, u, f in rows), "no zero rows"
    return {(c, i, s): int(u) * 10**8 + int(f) for c, i, s, u, f in rows}


async def test_kept_changes_equal_python_and_a_rebuild_through_random_groups(tmp_path: Path) -> None:
    db = Database(tmp_path / "portfolio.db", 1)
    db.open()
    try:
        world = World(db, random.Random(11))
        for _ in range(6):
            await world.new_wallet()
        cur = db.connection.cursor()
        for group in range(40):
            await asyncio.gather(*(op() for op in world.operations()))
            assert stored(cur) == expected(world.rows, world.chains), f"after group {group}"
            # the appends' shortcut reads balance_latest: an updated latest row is there as it is now
            assert latest(cur) == newest(world.rows), f"after group {group}"
            # every wallet's balance is its newest row's (0 without rows)
            balances = dict(cur.execute("SELECT id, balance FROM wallets").fetchall())
            assert balances == {w: r[3] for w, r in latest_balances(cur).items()} | {
                w: 0 for w in balances if w not in {r.wallet_id for r in world.rows.values()}
            }, f"after group {group}"
        assert len(world.rows) > 100 and len(world.chains) >= 3
        kept = stored(cur), derived_tables(cur)
        db.transaction(rebuild)
        assert (stored(cur), derived_tables(cur)) == kept
    finally:
        db.close()
