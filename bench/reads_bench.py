"""Reads at scale: per-wallet balance lists at 100k and 1M rows, and get misses at 1M rows.

The rows are filled straight in DuckDB before the service starts (tests/history.py: in
time order, the wallets taking turns, 12,500 balances per wallet at either size, so a
wallet's page costs the same if the table does not matter). In the same run:
- the no-op FastStream responder (the list body sent to it), 1 and 64 in flight;
- `wallet_balances.list` `{wallet_id: X}`, sort `-timestamp`, limit 100: page 1 and page
  100 (through the keyset cursor), single client (p50) and 64 in flight (req/s);
- `wallet_balances.get` of random ids with the cache off (every get a miss), 64 in flight,
  against DuckDB primary-key lookups in this process on 10 threads (the service's pool).
Goals, as ratios: list p50 at 1M <= 1.5x at 100k; list at 64 in flight >= 0.1x the no-op;
get miss >= 0.6x the in-process lookup. Each figure is a median over rounds.

    python -m bench.reads_bench [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import Run, closed_loop, connect, nats_server, responder, table, verdict
from service.store.ddl import apply_migrations
from tests.history import fill_children, made_id

PER_WALLET = 12_500
LIMIT = 100
WALLETS_ASKED = 4  # wallets whose pages are requested, at random
NOOP_PREFIX = "ekko.noop"
GOAL_GROWTH = 1.5
GOAL_LIST_RATE = 0.1
GOAL_MISS = 0.6
LOOKUP_THREADS = 10
COLUMNS = "id, created_at, updated_at, version, wallet_id, timestamp, balance, token_price, fiat_value"


def fill(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    try:
        apply_migrations(con)
        fill_children(con, "wallet_balances", rows, rows // PER_WALLET)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def balance_ids(rng: random.Random, rows: int, count: int) -> list[str]:
    return [made_id("wallet_balances", rng.randrange(rows)) for _ in range(count)]


def in_process_lookups(path: Path, ids: Sequence[str]) -> float:
    """Primary-key lookups per second on LOOKUP_THREADS threads, a cursor each."""
    con = duckdb.connect(str(path), read_only=True)
    try:

        def worker(chunk: Sequence[str]) -> None:
            cur = con.cursor()
            for entity_id in chunk:
                cur.execute(f"SELECT {COLUMNS} FROM wallet_balances WHERE id = ?", [entity_id]).fetchall()

        worker(ids[: len(ids) // 10])  # warm-up, as the service gets: the index and row groups read in
        threads = [threading.Thread(target=worker, args=(ids[k::LOOKUP_THREADS],)) for k in range(LOOKUP_THREADS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(ids) / (time.perf_counter() - start)
    finally:
        con.close()


async def list_pages(url: str, rows: int) -> dict[int, list[bytes]]:
    """Request bodies for page 1 and page 100 of WALLETS_ASKED wallets (walking the cursor)."""
    nc = await connect(url)
    pages: dict[int, list[bytes]] = {1: [], 100: []}
    try:
        for n in range(WALLETS_ASKED):
            wallet = made_id("parent", n * (rows // PER_WALLET) // WALLETS_ASKED)
            body: dict[str, Any] = {"filters": {"wallet_id": wallet}, "sort": ["-timestamp"], "limit": LIMIT}
            pages[1].append(json.dumps(body).encode())
            for _ in range(99):
                reply = json.loads((await nc.request("ekko.wallet_balances.list", json.dumps(body).encode(), 30)).data)
                assert len(reply["items"]) == LIMIT, reply
                body["cursor"] = reply["next_cursor"]
            pages[100].append(json.dumps(body).encode())
    finally:
        await nc.drain()
    return pages


async def measure(url: str, subject: str, payloads: Sequence[bytes], inflight: int) -> Run:
    nc = await connect(url)
    try:
        # A list at 64 in flight on a loaded machine can wait seconds: a timeout would end the run.
        await closed_loop(nc, subject, payloads[: max(20, len(payloads) // 10)], inflight, timeout=120)  # warm-up
        run = await closed_loop(nc, subject, payloads, inflight, timeout=120)
    finally:
        await nc.drain()
    if run.errors:
        raise RuntimeError(f"{subject}: {run.errors} error replies")
    return run


async def one_round(args: argparse.Namespace, url: str, dbs: dict[int, Path], rng: random.Random) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    single, many = args.requests // 10, args.requests
    for rows, db in dbs.items():
        with responder("ekko", url, "--db", str(db)):
            pages = await list_pages(url, rows)
            for page, bodies in pages.items():
                for inflight, count in ((1, single), (64, many)):
                    payloads = [rng.choice(bodies) for _ in range(count)]
                    run = await measure(url, "ekko.wallet_balances.list", payloads, inflight)
                    runs[f"list {rows:,} rows, page {page}, {inflight} in flight"] = run
                    if rows == max(dbs) and f"no-op, {inflight} in flight" not in runs:
                        noop = await measure(url, f"{NOOP_PREFIX}.wallets.get", payloads, inflight)
                        runs[f"no-op, {inflight} in flight"] = noop
    biggest = max(dbs)
    with responder("ekko", url, "--db", str(dbs[biggest]), "--cache-entries", "0"):
        ids = balance_ids(rng, biggest, many)
        payloads = [json.dumps({"id": i}).encode() for i in ids]
        runs[f"get miss {biggest:,} rows, 64 in flight"] = await measure(url, "ekko.wallet_balances.get", payloads, 64)
    return runs


def report(rounds: list[dict[str, Run]], floors: list[float], dbs: dict[int, Path]) -> bool:
    def med(name: str, metric: str) -> float:
        return statistics.median(r[name].rate if metric == "rate" else r[name].p(50) for r in rounds)

    rows = [
        [
            name,
            f"{med(name, 'rate'):,.0f}",
            f"{med(name, 'p50') * 1e3:.2f}",
            f"{statistics.median(r[name].p(99) for r in rounds) * 1e3:.2f}",
        ]
        for name in rounds[0]
    ]
    rows.append([f"in-process PK lookup, {LOOKUP_THREADS} threads", f"{statistics.median(floors):,.0f}", "", ""])
    print(f"\nmedians of {len(rounds)} rounds")
    print(table(["measure", "req/s", "p50 ms", "p99 ms"], rows))
    small, big = min(dbs), max(dbs)
    ok = True
    for page in (1, 100):
        growth = statistics.median(
            r[f"list {big:,} rows, page {page}, 1 in flight"].p(50)
            / r[f"list {small:,} rows, page {page}, 1 in flight"].p(50)
            for r in rounds
        )
        rate = statistics.median(
            r[f"list {big:,} rows, page {page}, 64 in flight"].rate / r["no-op, 64 in flight"].rate for r in rounds
        )
        ok = ok and growth <= GOAL_GROWTH and rate >= GOAL_LIST_RATE
        print(
            f"goal: page {page} p50 at {big:,} <= {GOAL_GROWTH}x at {small:,}: "
            f"{verdict(growth <= GOAL_GROWTH)} ({growth:.2f}x); "
            f"64 in flight >= {GOAL_LIST_RATE}x no-op: {verdict(rate >= GOAL_LIST_RATE)} ({rate:.3f}x)"
        )
    miss = statistics.median(
        r[f"get miss {big:,} rows, 64 in flight"].rate / f for r, f in zip(rounds, floors, strict=True)
    )
    print(f"goal: get miss >= {GOAL_MISS}x in-process lookup: {verdict(miss >= GOAL_MISS)} ({miss:.2f}x)")
    return ok and miss >= GOAL_MISS


async def run(args: argparse.Namespace) -> bool:
    rng = random.Random(3)
    with nats_server() as (server, tmp):
        dbs = {rows: Path(tmp) / f"balances-{rows}.db" for rows in args.sizes}
        for rows, db in dbs.items():
            started = time.perf_counter()
            fill(db, rows)
            print(f"filled {rows:,} balances in {time.perf_counter() - started:.1f}s", flush=True)
        rounds: list[dict[str, Run]] = []
        floors: list[float] = []
        with responder("noop", server.url, "--prefix", NOOP_PREFIX):
            for round_no in range(args.rounds):
                floors.append(in_process_lookups(dbs[max(dbs)], balance_ids(rng, max(dbs), args.requests)))
                rounds.append(await one_round(args, server.url, dbs, rng))
                figures = ", ".join(f"{name}: {r.rate:,.0f}/s" for name, r in rounds[-1].items())
                print(f"  round {round_no + 1}: in-process {floors[-1]:,.0f}/s; {figures}", flush=True)
        return report(rounds, floors, dbs)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reads_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (25k and 250k rows, 1 round)")
    parser.add_argument("--requests", type=int, default=1_000, help="requests per 64-in-flight run (1/10 single)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    args.sizes = (100_000, 1_000_000)
    if args.quick:
        args.sizes, args.requests, args.rounds = (25_000, 250_000), 500, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Returns 0 when the goals are met, 1 when not (the figures are printed either way)."""
    return 0 if asyncio.run(run(parse(argv))) else 1


if __name__ == "__main__":
    raise SystemExit(main())
