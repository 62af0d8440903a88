"""What the writer's derived balance state costs a group, in-process (no NATS, no outbox):
one transaction that inserts the rows and runs `BalanceStore.merge` on them, timed.

10,000 wallets with 100,000 rows over the past year (derived tables rebuilt), then, in
alternation, groups of 1 row (a create: the next row in time order of one of wallets 1,000 to
1,099), groups of 1 row older than the wallet's latest (out of order), and groups of 5,000 rows
(an ingest: 5 rows for each of wallets 0 to 999, newer than what is there). Prints the median
milliseconds per group: of the whole transaction, and of `merge` alone.
Run it from two checkouts back to back to compare them (the service's own figures on this
shared machine move more between runs than the derived state costs):

    python -m bench.balance_write_probe
    (cd <other checkout> && python -m bench.balance_write_probe)
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.harness import table
from schema.wallet_balances import WalletBalance
from service.store.balances import BalanceStore, rebuild
from service.store.database import Cursor, Database

NOW = datetime(2026, 11, 30)
WALLETS = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(10_000)]


def build(db: Database) -> None:
    con = db.connection
    con.execute(
        "INSERT INTO wallets SELECT printf('%08d-0000-4000-8000-000000000000', i), now(), now(), 1,"
        " CASE WHEN i % 3 = 0 THEN 'ETH' ELSE 'AVAX' END, printf('0x%040d', i), NULL, 0, 'active',"
        " printf('X:0x%040d', i) FROM range(10000) t(i)"
    )
    con.execute(
        "INSERT INTO wallet_balances SELECT uuid()::VARCHAR, now(), now(), 1,"
        " printf('%08d-0000-4000-8000-000000000000', i % 10000),"
        " TIMESTAMP '2025-11-30' + to_seconds((i * 31536000 // 100000)::BIGINT), (random() * 1000)::DECIMAL(38,18),"
        " NULL, (random() * 100000)::DECIMAL(38,8) FROM range(100000) t(i)"
    )
    db.transaction(rebuild)
    con.execute("CHECKPOINT")


def row(wallet: str, at: datetime, n: int) -> WalletBalance:
    return WalletBalance(
        id=str(uuid.uuid4()),
        created_at=NOW,
        updated_at=NOW,
        version=1,
        wallet_id=wallet,
        timestamp=at,
        balance=Decimal(n),
        fiat_value=Decimal(n).scaleb(-2),
    )


def group_ms(db: Database, rows: list[WalletBalance]) -> tuple[float, float]:
    """(ms of the transaction, ms of merge alone: the derived state)."""
    merge_ms = 0.0

    def write(cur: Cursor) -> None:
        nonlocal merge_ms
        cur.execute(
            "INSERT INTO wallet_balances SELECT unnest(?::VARCHAR[]), now(), now(), 1, unnest(?::VARCHAR[]),"
            " unnest(?::TIMESTAMP[]), unnest(?::VARCHAR[])::DECIMAL(38,18), NULL, unnest(?::VARCHAR[])::DECIMAL(38,8)",
            [
                [r.id for r in rows],
                [r.wallet_id for r in rows],
                [r.timestamp for r in rows],
                [str(r.balance) for r in rows],
                [str(r.fiat_value) for r in rows],
            ],
        )
        begun = time.perf_counter()
        BalanceStore(cur).merge(rows)
        merge_ms = (time.perf_counter() - begun) * 1000

    start = time.perf_counter()
    db.transaction(write)
    return (time.perf_counter() - start) * 1000, merge_ms


def main() -> None:
    times: dict[str, list[tuple[float, float]]] = {
        "create (1 row, in order)": [],
        "1 row, out of order": [],
        "ingest (5,000 rows, in order)": [],
    }
    with tempfile.TemporaryDirectory(prefix="ekko-write-probe-") as tmp:
        db = Database(Path(tmp) / "probe.db", 1).open()
        try:
            build(db)
            for n in range(100):
                at = NOW + timedelta(minutes=n)
                times["create (1 row, in order)"].append(group_ms(db, [row(WALLETS[1000 + n], at, n)]))
                old = NOW - timedelta(days=100, minutes=n)
                times["1 row, out of order"].append(group_ms(db, [row(WALLETS[5000 + n], old, n)]))
                if n % 10 == 0:
                    later = NOW + timedelta(hours=2 + n)
                    rows = [row(w, later + timedelta(seconds=k), k) for w in WALLETS[:1000] for k in range(5)]
                    times["ingest (5,000 rows, in order)"].append(group_ms(db, rows))
        finally:
            db.close()
    lines = [
        [k, f"{statistics.median(t for t, _ in v):.2f}", f"{statistics.median(m for _, m in v):.2f}", len(v)]
        for k, v in times.items()
    ]
    print(table(["group", "transaction median ms", "merge median ms", "groups"], lines))


if __name__ == "__main__":
    main()
