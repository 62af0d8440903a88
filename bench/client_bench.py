"""What the typed client costs: `python -m bench.client_bench [--quick]`.

The service (`python -m bench.serve ekko`, its own process) holds 200 wallets. The same
requests are sent two ways over one `client` connection, alternating rounds so both see the
same machine load:

- raw: nats-py `request`, `json.dumps` of the body, the error-header check, `json.loads`;
- typed: `EkkoClient` (`wallets.get(id)` -> `Wallet`, `wallets.list(limit=100)` -> `Page[Wallet]`).

Goal: the typed client keeps at least 80% of the raw requests per second in every mode
(its work is encoding a Struct and decoding into Structs, both in msgspec).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS

from bench.harness import connect, nats_server, responder, table, verdict
from ekko_client import EkkoClient

WALLETS = 200
GOAL_RATIO = 0.8


async def raw_call(nc: NATS, subject: str, body: dict[str, Any]) -> Any:
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=10)
    if msg.headers and "Nats-Service-Error-Code" in msg.headers:
        raise RuntimeError(f"{subject}: {msg.headers['Nats-Service-Error-Code']}")
    return json.loads(msg.data)


async def rate(call: Callable[[int], Awaitable[object]], total: int, inflight: int) -> float:
    """Requests per second of `total` calls, `inflight` outstanding at all times."""
    numbers = iter(range(total))

    async def worker() -> None:
        for n in numbers:
            await call(n)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return total / (time.perf_counter() - start)


async def main_async(quick: bool) -> int:
    rounds, gets, lists = (2, 600, 60) if quick else (5, 3000, 300)
    with nats_server() as (server, tmp), responder("ekko", server.url, "--db", str(tmp / "ekko.db")):
        nc = await connect(server.url_for("client"))
        ekko = EkkoClient(await nats.connect(server.url_for("client"), pending_size=64 * 1024 * 1024))
        try:
            ids = [
                (await ekko.wallets.create(blockchain_symbol="ETH", address=f"0x{n:040x}")).id for n in range(WALLETS)
            ]
            modes: dict[str, tuple[Callable[[int], Awaitable[object]], Callable[[int], Awaitable[object]], int, int]]
            modes = {
                "get, 1 in flight": (
                    lambda n: raw_call(nc, "ekko.wallets.get", {"id": ids[n % WALLETS]}),
                    lambda n: ekko.wallets.get(ids[n % WALLETS]),
                    gets // 3,
                    1,
                ),
                "get, 32 in flight": (
                    lambda n: raw_call(nc, "ekko.wallets.get", {"id": ids[n % WALLETS]}),
                    lambda n: ekko.wallets.get(ids[n % WALLETS]),
                    gets,
                    32,
                ),
                "list 100, 4 in flight": (
                    lambda n: raw_call(nc, "ekko.wallets.list", {"limit": 100}),
                    lambda n: ekko.wallets.list(limit=100),
                    lists,
                    4,
                ),
            }
            results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in modes}
            for _ in range(rounds):
                for name, (raw, typed, total, inflight) in modes.items():
                    results[name][0].append(await rate(raw, total, inflight))
                    results[name][1].append(await rate(typed, total, inflight))
        finally:
            await nc.close()
            await ekko.nc.close()

    rows, ok = [], True
    for name, (raw_rates, typed_rates) in results.items():
        raw_rate, typed_rate = statistics.median(raw_rates), statistics.median(typed_rates)
        ok &= typed_rate >= GOAL_RATIO * raw_rate
        rows.append([name, f"{raw_rate:,.0f}/s", f"{typed_rate:,.0f}/s", f"{typed_rate / raw_rate:.2f}"])
    print(f"\nMedian of {rounds} alternating rounds, service in its own process (machine shared: ratios count):")
    print(table(["mode", "raw nats-py + json", "EkkoClient", "typed / raw"], rows))
    print(f"\ntyped >= {GOAL_RATIO:.0%} of raw in every mode: {verdict(ok)}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    return asyncio.run(main_async(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
