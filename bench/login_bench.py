"""Logins under attack (issue 10): `python -m bench.login_bench [--quick]`.

Users are hashed at cost 12, then the service (`python -m bench.serve ekko`, its own
process) runs with BCRYPT_ROUNDS 4, the issue's case. Measured over a `client` connection:

1. the timing oracle: median time of a wrong-password login for known emails against
   unknown ones (before issue 10: 237 ms against 6 ms);
2. a normal user's login p50 (and `ekko.wallets.get` p50) alone, then while 32 logins
   stay in flight: a brute force on one email (locked out after EKKO_LOGIN_MAX_FAILURES),
   and a spread flood of one login per unknown email (each costs a decoy bcrypt at cost 12).

Goals: the known/unknown medians within 1.5x of each other; `ekko.wallets.get` p50 during
either flood under 50 ms (the flood queues on the bcrypt pool, not on every subject).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from bench.harness import nats_server, percentile, responder, table, verdict
from service.app import Ekko
from service.config import Settings
from tests.client import Client

PASSWORD = "correct horse battery"
FLOOD_INFLIGHT = 32
GOAL_ORACLE = 1.5
GOAL_GET_P50 = 0.050


async def seed(url: str, db: Path, victims: int) -> tuple[str, list[str], str]:
    """A normal user, `victims` others, at cost 12 (the service is later started at 4)."""
    app = Ekko(Settings(duckdb_path=db, bcrypt_rounds=12), url)
    await app.start()
    nc = await nats.connect(url)
    try:
        client = Client(nc)
        normal = await client.ok("ekko.users.create", {"email": "normal@example.com", "password": PASSWORD})
        others = [
            (await client.ok("ekko.users.create", {"email": f"victim{n}@example.com", "password": PASSWORD}))["email"]
            for n in range(victims)
        ]
        wallet = await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "ab" * 20})
    finally:
        await nc.close()
        await app.stop()
    return normal["email"], others, wallet["id"]


async def login(nc: NATS, email: str, password: str) -> tuple[float, int]:
    start = time.perf_counter()
    reply = await nc.request("ekko.users.authenticate", json.dumps({"email": email, "password": password}).encode(), 60)
    status = int((reply.headers or {}).get("Nats-Service-Error-Code", 200))
    return time.perf_counter() - start, status


async def oracle(nc: NATS, known: list[str], rounds: int) -> tuple[float, float]:
    known_times, unknown_times = [], []
    for n in range(rounds):
        known_times.append((await login(nc, known[n % len(known)], "wrong password"))[0])
        unknown_times.append((await login(nc, f"nobody{n}@example.com", "wrong password"))[0])
    return statistics.median(known_times), statistics.median(unknown_times)


Traffic = tuple[list[float], list[float], int]  # login latencies, get latencies, failed logins


async def normal_traffic(nc: NATS, email: str, wallet_id: str, seconds: float) -> Traffic:
    """Sequential logins of the normal user and gets of a wallet; (login, get latencies, failures)."""
    logins, gets, failures = [], [], 0
    body = json.dumps({"id": wallet_id}).encode()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        took, status = await login(nc, email, PASSWORD)
        logins.append(took)
        failures += status != 200
        start = time.perf_counter()
        await nc.request("ekko.wallets.get", body, timeout=60)
        gets.append(time.perf_counter() - start)
    return sorted(logins), sorted(gets), failures


async def flood(nc: NATS, emails: Callable[[int], str], stop: asyncio.Event) -> dict[int, int]:
    statuses: dict[int, int] = {}
    counter = iter(range(10**9))

    async def worker() -> None:
        while not stop.is_set():
            _, status = await login(nc, emails(next(counter)), "guess")
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(FLOOD_INFLIGHT)))
    return statuses


async def during(
    make_flood: Callable[[asyncio.Event], Coroutine[Any, Any, dict[int, int]]],
    measure: Callable[[], Coroutine[Any, Any, Traffic]],
) -> tuple[Traffic, dict[int, int]]:
    stop = asyncio.Event()
    flooding = asyncio.create_task(make_flood(stop))
    await asyncio.sleep(1.0)  # let the flood fill the queue first
    result = await measure()
    stop.set()
    return result, await flooding


async def main_async(quick: bool) -> int:
    seconds, rounds = (4.0, 7) if quick else (15.0, 21)
    with nats_server() as (server, tmp):
        db = tmp / "ekko.db"
        normal, victims, wallet_id = await seed(server.url, db, victims=5)
        with responder("ekko", server.url, "--db", str(db)):
            nc = await nats.connect(server.url_for("client"), pending_size=64 * 1024 * 1024)
            try:
                await login(nc, normal, PASSWORD)  # the first success re-hashes at cost 4
                known, unknown = await oracle(nc, victims, rounds)
                alone = await normal_traffic(nc, normal, wallet_id, seconds)
                brute, brute_statuses = await during(
                    lambda stop: flood(nc, lambda n: victims[0], stop),
                    lambda: normal_traffic(nc, normal, wallet_id, seconds),
                )
                spread, spread_statuses = await during(
                    lambda stop: flood(nc, lambda n: f"flood{n}@example.com", stop),
                    lambda: normal_traffic(nc, normal, wallet_id, seconds),
                )
            finally:
                await nc.close()

    ratio = max(known, unknown) / min(known, unknown)
    print(f"\nTiming oracle ({rounds} wrong-password logins each, stored cost 12, BCRYPT_ROUNDS 4):")
    print(
        f"  known email median {known * 1000:.0f} ms, unknown email median {unknown * 1000:.0f} ms, ratio {ratio:.2f}"
    )
    rows = []
    for name, (logins, gets, failures), statuses in (
        ("no flood", alone, {}),
        ("brute force, 1 email", brute, brute_statuses),
        ("spread, unknown emails", spread, spread_statuses),
    ):
        rows.append(
            [
                name,
                len(logins),
                f"{percentile(logins, 50) * 1000:.0f} ms",
                f"{percentile(logins, 99) * 1000:.0f} ms",
                failures,
                f"{percentile(gets, 50) * 1000:.1f} ms",
                ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "-",
            ]
        )
    print(f"\nNormal user for {seconds:.0f} s while {FLOOD_INFLIGHT} flood logins stay in flight:")
    print(table(["flood", "logins", "login p50", "login p99", "failed", "wallets.get p50", "flood replies"], rows))
    oracle_ok = ratio <= GOAL_ORACLE
    get_ok = all(percentile(r[1], 50) < GOAL_GET_P50 for r in (brute, spread))
    print(f"\noracle ratio <= {GOAL_ORACLE}: {verdict(oracle_ok)}; get p50 < 50 ms in floods: {verdict(get_ok)}")
    return 0 if oracle_ok and get_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.login_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    return asyncio.run(main_async(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
