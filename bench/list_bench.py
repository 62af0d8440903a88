"""What `count`, `include`, `select`, or-groups, patterns and nullable sorts add to one
`ekko.alerts.list` page, against the plain page measured in the same run.

No NATS: the list use case (service.usecases.listing.list_page) on a DuckDB file with
10,000 wallets and 100,000 alerts, one request at a time; each figure is the p50/p99 of
`--requests` pages asked round-robin, each ratio the p50 over the plain page's p50.

    python -m bench.list_bench [--alerts N] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from schema.common import ListRequest
from service.model.limits import PayloadLimit
from service.model.registry import ENTITIES
from service.store.database import Database
from service.usecases.listing import list_page

WALLET_ID = "printf('00000000-0000-4000-8000-%012d', {})"

SCENARIOS: dict[str, dict[str, Any]] = {
    "plain (status filter)": {"filters": {"status": "active"}},
    "count": {"filters": {"status": "active"}, "count": True},
    "include wallet": {"filters": {"status": "active"}, "include": ["wallet"]},
    "include wallet + count": {"filters": {"status": "active"}, "include": ["wallet"], "count": True},
    "select 2 fields": {"filters": {"status": "active"}, "select": ["id", "status"]},
    "or group + ilike": {"filters": {"or": [{"status": "resolved"}, {"message": {"ilike": "%77%"}}]}},
    "sort nullable icon": {"filters": {"status": "active"}, "sort": ["icon"]},
}


def seed(path: Path, wallets: int, alerts: int) -> None:
    db = Database(path, 1).open()
    con = db.connection
    con.execute(
        f"INSERT INTO wallets (id, created_at, updated_at, version, blockchain_symbol, address, name, balance, status)"
        f" SELECT {WALLET_ID.format('i')}, now(), now(), 1, 'ETH', printf('0x%040x', i),"
        " CASE WHEN i % 5 = 0 THEN NULL ELSE 'wallet ' || i END, i % 1000, 'active' FROM range(?) t(i)",
        [wallets],
    )
    con.execute(
        "INSERT INTO alerts (id, created_at, updated_at, version, type, message, status, icon, priority,"
        " related_wallet_id, notifications_enabled)"
        " SELECT printf('10000000-0000-4000-8000-%012d', i), now() - to_seconds(i), now(), 1, 'price',"
        " 'alert ' || i, CASE i % 3 WHEN 0 THEN 'active' WHEN 1 THEN 'resolved' ELSE 'muted' END,"
        f" CASE WHEN i % 4 = 0 THEN NULL ELSE 'icon' || (i % 7) END, 'high', {WALLET_ID.format('i % ?')}, true"
        " FROM range(?) t(i)",
        [wallets, alerts],
    )
    db.close()


async def measure(db: Database, count: int) -> dict[str, list[float]]:
    """Round-robin: each round asks one page of every scenario, so drifting load hits all
    alike; each scenario walks on with its own cursor (NULLs and ties included)."""
    spec, limit = ENTITIES["alerts"], PayloadLimit()
    times: dict[str, list[float]] = {name: [] for name in SCENARIOS}
    cursors: dict[str, str | None] = dict.fromkeys(SCENARIOS)
    for _ in range(count):
        for name, request in SCENARIOS.items():
            body = msgspec.convert({**request, "cursor": cursors[name]}, ListRequest)
            started = time.perf_counter()
            reply = await list_page(spec, db, limit, body)
            times[name].append(time.perf_counter() - started)
            cursors[name] = reply.next_cursor
    return times


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def main(alerts: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ekko-list-bench-") as tmp:
        path = Path(tmp) / "ekko.db"
        seed(path, 10_000, alerts)
        db = Database(path, 2).open()
        try:
            await measure(db, 5)  # warm up: plans, caches
            figures = await measure(db, requests)
        finally:
            db.close()
    base = statistics.median(figures["plain (status filter)"])
    print(f"alerts.list, limit 50, {alerts:,} alerts, 10,000 wallets, {requests} pages each (machine shared: ratios)")
    print(f"{'scenario':<26}{'p50 ms':>9}{'p99 ms':>9}{'x plain':>9}")
    for name, times in figures.items():
        print(f"{name:<26}{p(times, 0.5):>9.2f}{p(times, 0.99):>9.2f}{statistics.median(times) / base:>9.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.requests))
