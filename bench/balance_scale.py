"""Balance questions at 100,000 and 1,000,000 rows, in-process (no NATS): does the cost grow
with the length of history?

10,000 wallets; balance rows spread evenly over one year, built with one bulk INSERT and
the derived tables rebuilt (service.store.balances.rebuild), which writes the roll-ups in
wallet order. Each question is asked 15 times through BalanceService on the reader pool;
the median is printed for both sizes and their ratio. Then `history` is asked again with the
roll-ups rewritten in the order months of ingest leave them (by interval start, every
wallet's intervals of a day side by side: shown, not judged, as the service does not leave
them so for long), after the service's re-sort (service.store.rollup_resort, timed), and
with the newest 245,760 roll-ups (EKKO_ROLLUP_RESORT_ROWS) appended again in arrival order:
the most a wallet's read meets before the next re-sort. Goal (per judged question): p50 at 1M
no more than 1.5x p50 at 100k.

    python -m bench.balance_scale
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import table, verdict
from schema.balances import AtRequest, HistoryRequest, LatestRequest, PerformanceRequest, PortfolioRequest
from service.model.limits import PayloadLimit
from service.store.balances import rebuild
from service.store.database import Database
from service.store.rollup_resort import MIN_ROWS, RollupResort
from service.usecases.balances import BalanceService
from service.usecases.cache import RecordCache

END = datetime(2026, 11, 30, tzinfo=UTC)
WALLET = "00000007-0000-4000-8000-000000000000"
GOAL = 1.5
HISTORY = "history (one wallet, one year, 1d)"
ARRIVAL = "history, roll-ups in arrival order (not judged)"
RESORTED = "history, arrival order after the service's re-sort"
TAIL = f"history, re-sorted + newest {MIN_ROWS:,} roll-ups appended"


def build(db: Database, rows: int) -> None:
    con = db.connection
    con.execute(
        "INSERT INTO wallets SELECT printf('%08d-0000-4000-8000-000000000000', i), now(), now(), 1,"
        " CASE WHEN i % 3 = 0 THEN 'ETH' ELSE 'AVAX' END, printf('0x%040d', i), NULL, 0,"
        " CASE WHEN i % 5 = 0 THEN 'frozen' ELSE 'active' END,"
        " printf('%s:0x%040d', CASE WHEN i % 3 = 0 THEN 'ETH' ELSE 'AVAX' END, i) FROM range(10000) t(i)"
    )
    con.execute(
        "INSERT INTO wallet_balances SELECT uuid()::VARCHAR, now(), now(), 1,"
        " printf('%08d-0000-4000-8000-000000000000', i % 10000),"
        " TIMESTAMP '2025-11-30' + to_seconds((i * 31536000 // ?)::BIGINT), (random() * 1000)::DECIMAL(38,18),"
        " 2000.5, (random() * 100000)::DECIMAL(38,8) FROM range(?) t(i)",
        [rows, rows],
    )
    rebuild(con)
    con.execute("CHECKPOINT")


def questions(svc: BalanceService) -> dict[str, Callable[[], Awaitable[Any]]]:
    month, year = END - timedelta(days=30), END - timedelta(days=365)
    hundred = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(100)]
    return {
        "reports.wallet_stats": svc.wallet_stats,
        "reports.portfolio_history (30 days, 1d)": lambda: svc.portfolio_history(
            PortfolioRequest(from_=month, to=END, interval="1d")
        ),
        HISTORY: lambda: svc.history(HistoryRequest(wallet_id=WALLET, interval="1d", from_=year, to=END)),
        "latest (100 wallets)": lambda: svc.latest(LatestRequest(wallet_ids=hundred)),
        "at": lambda: svc.at(AtRequest(wallet_id=WALLET, at=END - timedelta(days=100))),
        "performance (30 days)": lambda: svc.performance(PerformanceRequest(wallet_id=WALLET, from_=month, to=END)),
    }


async def _median(ask: Callable[[], Awaitable[Any]], times: int = 15) -> float:
    """Median milliseconds of `times` answers."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        await ask()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1000


def in_arrival_order(db: Database) -> None:
    """The roll-ups rewritten by interval start, as appends in time order leave them."""
    con = db.connection
    con.execute("CREATE TEMP TABLE arrived AS SELECT * FROM balance_rollups ORDER BY start, wallet_id, interval")
    con.execute("DELETE FROM balance_rollups")
    con.execute("INSERT INTO balance_rollups SELECT * FROM arrived")
    con.execute("DROP TABLE arrived")
    con.execute("CHECKPOINT")


def newest_appended(db: Database, count: int) -> None:
    """The newest `count` roll-ups (by start) taken out and appended again in arrival order."""
    con = db.connection
    con.execute(f"CREATE TEMP TABLE tail AS SELECT * FROM balance_rollups ORDER BY start DESC LIMIT {count}")
    con.execute(
        "DELETE FROM balance_rollups r USING tail t"
        " WHERE r.wallet_id = t.wallet_id AND r.interval = t.interval AND r.start = t.start"
    )
    con.execute("INSERT INTO balance_rollups SELECT * FROM tail ORDER BY start, wallet_id, interval")
    con.execute("DROP TABLE tail")
    con.execute("CHECKPOINT")


async def measure(path: Path, rows: int, resort_seconds: dict[int, float]) -> dict[str, float]:
    db = Database(path, 4).open()
    try:
        build(db, rows)
        svc = BalanceService(db, RecordCache(0), after_commit=lambda changes: None, limit=PayloadLimit(lambda: 8 << 20))
        asked = questions(svc)
        medians = {name: await _median(ask) for name, ask in asked.items()}
        in_arrival_order(db)
        medians[ARRIVAL] = await _median(asked[HISTORY])
        started = time.perf_counter()
        outcome = await RollupResort(db).run_once()
        resort_seconds[rows] = time.perf_counter() - started
        if outcome != "sorted":
            raise SystemExit(f"the re-sort did not complete: {outcome}")
        medians[RESORTED] = await _median(asked[HISTORY])
        newest_appended(db, MIN_ROWS)
        medians[TAIL] = await _median(asked[HISTORY])
        return medians
    finally:
        db.close()


def main() -> None:
    resort_seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="ekko-balance-scale-") as tmp:
        small = asyncio.run(measure(Path(tmp) / "small.db", 100_000, resort_seconds))
        large = asyncio.run(measure(Path(tmp) / "large.db", 1_000_000, resort_seconds))
    rows = [[name, f"{small[name]:.1f}", f"{large[name]:.1f}", f"{large[name] / small[name]:.2f}x"] for name in small]
    print(table(["question", "p50 ms at 100k rows", "p50 ms at 1M rows", "1M / 100k"], rows))
    took = ", ".join(f"{s:.1f} s at {n:,} balance rows" for n, s in resort_seconds.items())
    print(f"the roll-ups' re-sort beside the writer (run_once): {took}")
    met = all(large[n] / small[n] <= GOAL for n in small if n != ARRIVAL)
    print(f"\ngoal: each judged question at 1M rows <= {GOAL}x at 100k: {verdict(met)} (machine shared, 2 cores)")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
