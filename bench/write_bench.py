"""Write throughput at scale: creates with sync on against the no-op responder and `kv.put`.

In one run, each load a closed loop from this process against a responder in its own
process (`python -m bench.serve`), 64 and 256 requests in flight:
- baselines: the no-op FastStream responder, and `kv.put` into a bucket of its own;
- `ekko.wallet_balances.create` with the relay on (every create reaches KV);
- `ekko.wallets.create` (a unique key checked per create) on tables pre-filled with 1k,
  10k and 100k wallets of random addresses (written straight into DuckDB first).
Goals (ratios in this run): balance creates >= 0.5x the no-op; wallet creates >= 0.3x
the no-op and flat (100k stored >= 0.8x of 1k stored).

    python -m bench.write_bench [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig

from bench.harness import Run, closed_loop, connect, nats_server, outbox_drained, responder, table, verdict
from service.store.database import Database

BALANCE = {"balance": "1234.5678", "token_price": "2000.5", "fiat_value": "2469600.12"}
INFLIGHTS = (64, 256)
STORED = (1_000, 10_000, 100_000)
GOAL_BALANCES, GOAL_WALLETS, GOAL_FLAT = 0.5, 0.3, 0.8
GROUPS: dict[str, float] = {}  # load -> writes per writer transaction during it
CPU: dict[str, tuple[float, ...]] = {}  # load -> the responder's CPU seconds per request: all, event loop


def random_address(rng: random.Random) -> str:
    return "0x" + rng.randbytes(20).hex()


def prefill(path: Path, count: int, rng: random.Random) -> None:
    """`count` wallets with random addresses, inserted in bulk before the service opens the file."""
    db = Database(path, pool_size=1).open()
    try:
        addresses = [random_address(rng) for _ in range(count)]
        db.connection.execute(
            "INSERT INTO wallets SELECT uuid()::VARCHAR, now(), now(), 1, 'ETH', a, NULL, 0, 'active', '3:eth' || a"
            " FROM (SELECT unnest(?::VARCHAR[]) AS a)",
            [addresses],
        )
    finally:
        db.close()


async def kv_puts(url: str, count: int, inflight: int) -> Run:
    nc = await connect(url)
    try:
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=f"bench_put_{inflight}", history=1))
        value = json.dumps({"id": "x" * 36, "wallet_id": "y" * 36, **BALANCE}).encode()
        latencies: list[float] = []
        keys = iter(range(count))

        async def worker() -> None:
            for i in keys:
                start = time.perf_counter()
                await kv.put(f"k{i}", value)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return Run(sorted(latencies), time.perf_counter() - start)
    finally:
        await nc.drain()


async def writer_groups(nc: NATS) -> tuple[int, float]:
    """(transactions, writes in them) the service's writer has run since it started."""
    figures = json.loads((await nc.request("ekko.metrics", b"", timeout=10)).data)["writer"]["group_size"]
    return int(figures["count"]), float(figures["sum"])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU time the process has used, and its main thread (the event loop)."""

    def used(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return used(Path(f"/proc/{pid}/stat")), used(Path(f"/proc/{pid}/task/{pid}/stat"))


async def measured(
    nc: NATS, pid: int, label: str, subject: str, payloads: Sequence[bytes], inflight: int, *, ekko: bool = True
) -> Run:
    """The closed loop; notes the responder's CPU per request (for ekko until the relay has
    published everything, included) and the writes per writer transaction."""
    before = await writer_groups(nc) if ekko else (0, 0.0)
    cpu = cpu_seconds(pid)
    run = await closed_loop(nc, subject, payloads, inflight)
    if ekko:
        after = await writer_groups(nc)
        await outbox_drained(nc, timeout=300)  # the next load starts with an empty outbox
        GROUPS[label] = (after[1] - before[1]) / max(after[0] - before[0], 1)
    CPU[label] = tuple((end - start) / len(payloads) for end, start in zip(cpu_seconds(pid), cpu, strict=True))
    return run


async def ekko_loads(url: str, db: Path, loads: Sequence[tuple[str, str, list[bytes], int]]) -> dict[str, Run]:
    """Each (label, subject, payloads, in flight) against one ekko process on `db`."""
    runs: dict[str, Run] = {}
    with responder("ekko", url, "--db", str(db)) as proc:
        nc = await connect(url)
        try:
            for label, subject, payloads, inflight in loads:
                runs[label] = await measured(nc, proc.pid, label, subject, payloads, inflight)
        finally:
            await nc.drain()
    return runs


async def run(args: argparse.Namespace) -> bool:
    n, rng = args.requests, random.Random(14)
    runs: dict[str, Run] = {}
    with nats_server() as (server, tmp):
        with responder("noop", server.url) as proc:
            nc = await connect(server.url)
            try:
                for inflight in INFLIGHTS:
                    label = f"no-op @{inflight}"
                    runs[label] = await measured(
                        nc, proc.pid, label, "ekko.wallets.get", [b"{}"] * n, inflight, ekko=False
                    )
            finally:
                await nc.drain()
        for inflight in INFLIGHTS:
            runs[f"kv.put @{inflight}"] = await kv_puts(server.url, n, inflight)
        # Balance creates, sync on: one wallet, then creates of its balances.
        with responder("ekko", server.url, "--db", str(tmp / "balances.db")) as proc:
            nc = await connect(server.url)
            try:
                body = json.dumps({"blockchain_symbol": "ETH", "address": random_address(rng)}).encode()
                wallet = json.loads((await nc.request("ekko.wallets.create", body, timeout=10)).data)
                payload = json.dumps({"wallet_id": wallet["id"], **BALANCE}).encode()
                for inflight in INFLIGHTS:
                    label = f"wallet_balances.create @{inflight}"
                    runs[label] = await measured(
                        nc, proc.pid, label, "ekko.wallet_balances.create", [payload] * n, inflight
                    )
            finally:
                await nc.drain()
        for stored in STORED:
            path = tmp / f"wallets{stored}.db"
            prefill(path, stored, rng)
            bodies = [
                json.dumps({"blockchain_symbol": "ETH", "address": random_address(rng)}).encode() for _ in range(n)
            ]
            runs |= await ekko_loads(
                server.url, path, [(f"wallets.create, {stored:,} stored @64", "ekko.wallets.create", bodies, 64)]
            )
    return report(runs, n)


def report(runs: dict[str, Run], n: int) -> bool:
    noop = {inflight: runs[f"no-op @{inflight}"].rate for inflight in INFLIGHTS}
    rows = []
    for label, r in runs.items():
        inflight = int(label.rsplit("@", 1)[1])
        rows.append(
            [
                label,
                f"{r.rate:,.0f}",
                f"{r.p(50) * 1000:,.1f}",
                f"{r.p(99) * 1000:,.1f}",
                r.errors,
                f"{GROUPS[label]:.1f}" if label in GROUPS else "-",
                f"{CPU[label][0] * 1000:.2f} ({CPU[label][1] * 1000:.2f})" if label in CPU else "-",
                f"{r.rate / noop[inflight]:.2f}x",
            ]
        )
    print(f"\nclosed loop, {n:,} requests per load (one run each; the machine is shared)")
    print(
        table(
            ["load", "req/s", "p50 ms", "p99 ms", "errors", "writes / tx", "CPU ms / req (event loop)", "vs no-op"],
            rows,
        )
    )
    balances = min(runs[f"wallet_balances.create @{i}"].rate / noop[i] for i in INFLIGHTS)
    wallets = {s: runs[f"wallets.create, {s:,} stored @64"].rate for s in STORED}
    flat = wallets[STORED[-1]] / wallets[STORED[0]]
    errors = sum(r.errors for r in runs.values())
    print(
        f"goal: balance creates >= {GOAL_BALANCES}x no-op: {verdict(balances >= GOAL_BALANCES)} ({balances:.2f}x); "
        f"wallet creates >= {GOAL_WALLETS}x no-op: {verdict(min(wallets.values()) / noop[64] >= GOAL_WALLETS)}"
        f" ({min(wallets.values()) / noop[64]:.2f}x); flat (100k >= {GOAL_FLAT}x of 1k): "
        f"{verdict(flat >= GOAL_FLAT)} ({flat:.2f}x); errors: {errors}"
    )
    cpu = {s: CPU[f"wallets.create, {s:,} stored @64"][0] for s in STORED}
    print(
        "service CPU per wallet create (less noisy than the rate on a shared machine): "
        + ", ".join(f"{s:,} stored {c * 1000:.2f} ms" for s, c in cpu.items())
        + f"; 100k / 1k: {cpu[STORED[-1]] / cpu[STORED[0]]:.2f}x"
    )
    return (
        balances >= GOAL_BALANCES
        and min(wallets.values()) / noop[64] >= GOAL_WALLETS
        and flat >= GOAL_FLAT
        and not errors
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.write_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (500 requests per load)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per load")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 500
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Returns 0 when every goal is met, 1 when not (the figures are printed either way)."""
    return 0 if asyncio.run(run(parse(argv))) else 1


if __name__ == "__main__":
    raise SystemExit(main())
