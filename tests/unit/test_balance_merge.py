"""The writer's merge of new balance rows (BalanceStore.merge: UPDATEs of the intervals and
latest rows that exist, INSERTs of the new ones) leaves exactly what a rebuild from every row
derives: rows out of order, equal timestamps, first rows of wallets and intervals, across
several transactions and several rows of one key in one, in small groups and in bulk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from schema.wallet_balances import WalletBalance
from service.store.balances import BalanceStore, rebuild
from service.store.database import Cursor, Database

T0 = datetime(2026, 3, 1, 22, tzinfo=UTC)
WALLETS = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(4)]


def derived(cur: Cursor) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rollups = cur.execute("SELECT * FROM balance_rollups ORDER BY ALL").fetchall()
    return rollups, cur.execute("SELECT * FROM balance_latest ORDER BY ALL").fetchall()


def test_merged_groups_equal_a_rebuild_from_every_row(tmp_path: Path) -> None:
    rng = random.Random(7)
    db = Database(tmp_path / "merge.db", 1)
    db.open()
    try:
        cur = db.connection.cursor()
        for n, wallet in enumerate(WALLETS):
            cur.execute(
                "INSERT INTO wallets VALUES (?, now(), now(), 1, 'ETH', ?, NULL, 0, 'active', ?)",
                [wallet, f"0x{n:040x}", f"ETH:0x{n:040x}"],
            )
        number = 0
        for size in (1, 5, 40, 3, 60, 1, 1_200, 25):  # 1,200: a large group of creates
            group = []
            for _ in range(size):
                number += 1
                at = T0 + timedelta(minutes=rng.choice([rng.randrange(0, 60 * 24 * 10), 30]))  # 30: many ties
                balance = Decimal(rng.randrange(-(10**20), 10**20)).scaleb(-18)
                fiat = None if rng.random() < 0.2 else Decimal(rng.randrange(10**12)).scaleb(-8)
                group.append(
                    WalletBalance(
                        id=f"{rng.randrange(10**6):06d}-{number}",
                        created_at=T0,
                        updated_at=T0,
                        version=1,
                        wallet_id=rng.choice(WALLETS[: 1 + number // 20]),  # wallets join over time
                        timestamp=at,
                        balance=balance,
                        token_price=None,
                        fiat_value=fiat,
                    )
                )

            def write(cur: Cursor, group: list[WalletBalance] = group) -> None:
                for r in group:
                    cur.execute(
                        "INSERT INTO wallet_balances VALUES (?, ?, ?, 1, ?, ?, ?, NULL, ?)",
                        [r.id, T0, T0, r.wallet_id, r.timestamp.replace(tzinfo=None), r.balance, r.fiat_value],
                    )
                BalanceStore(cur).merge(group)

            db.transaction(write)
        merged = derived(cur)
        assert len(merged[1]) == len(WALLETS)
        db.transaction(rebuild)
        assert merged == derived(cur)
    finally:
        db.close()
