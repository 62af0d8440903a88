"""Short requests beside long ones of the same subject: what a short one waits for.

Builds 10,000 wallets and 100,000 alerts (bench.report_bench.fill), serves them with
`python -m bench.serve ekko` in its own process, then, in one run:
- short `alerts.list` requests (one status, limit 1), one at a time, alone;
- the same short requests, one at a time, while `--long` clients each send long ones back to
  back (one status, include wallet, count, limit 200) to the same subject.
It prints the short requests' p50/p90/p99 both ways and their ratio: how long a short request
waits because a long one holds what it needs (a subscriber, a read cursor, the CPU). No goal;
docs/decisions.md 48 has the figures that chose how subjects are subscribed.

    python -m bench.mixed_bench [--quick] [--long N] [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from nats.aio.client import Client as NATS

from bench.harness import connect, is_error, nats_server, percentile, responder, table
from bench.measures import Dataset
from bench.report_bench import build

SHORT = json.dumps({"filters": {"status": "active"}, "limit": 1}).encode()
LONG = json.dumps({"filters": {"status": "active"}, "include": ["wallet"], "count": True, "limit": 200}).encode()
SUBJECT = "ekko.alerts.list"


async def _one_at_a_time(nc: NATS, samples: int, pause: float) -> list[float]:
    latencies = []
    for _ in range(samples):
        start = time.perf_counter()
        if is_error(await nc.request(SUBJECT, SHORT, timeout=10)):
            raise SystemExit("a short request got an error reply: the figures would not mean anything")
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(pause)  # the long clients' turn
    return sorted(latencies)


async def run(args: argparse.Namespace) -> tuple[list[float], list[float], int]:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with nats_server() as (server, tmp):
        build(tmp / "ekko.db", Dataset(args.wallets, args.wallets, args.alerts, 100, now))
        with responder("ekko", server.url, "--db", str(tmp / "ekko.db")):
            nc = await connect(server.url)
            await _one_at_a_time(nc, 20, 0)  # warm: the first requests plan and cache
            alone = await _one_at_a_time(nc, args.samples, 0.002)
            stop, long_done = asyncio.Event(), 0

            async def long_client() -> None:
                nonlocal long_done
                while not stop.is_set():
                    if is_error(await nc.request(SUBJECT, LONG, timeout=30)):
                        raise SystemExit("a long request got an error reply")
                    long_done += 1

            clients = [asyncio.create_task(long_client()) for _ in range(args.long)]
            await asyncio.sleep(0.5)
            beside = await _one_at_a_time(nc, args.samples, 0.002)
            stop.set()
            await asyncio.gather(*clients)
            await nc.close()
    return alone, beside, long_done


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and samples: proves the bench runs")
    parser.add_argument("--long", type=int, default=3, help="clients sending long requests (default 3)")
    parser.add_argument("--samples", type=int, default=400, help="short requests per phase (default 400)")
    args = parser.parse_args(argv)
    args.wallets, args.alerts = 10_000, 100_000
    if args.quick:
        args.wallets, args.alerts, args.samples = 300, 3_000, min(args.samples, 40)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    alone, beside, long_done = asyncio.run(run(args))
    rows = []
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        a, b = percentile(alone, q), percentile(beside, q)
        rows.append((name, f"{a * 1000:.2f}", f"{b * 1000:.2f}", f"{b / a:.2f}x"))
    print(f"\n`{SUBJECT}` limit 1, one at a time; beside {args.long} clients sending long lists ({long_done} answered)")
    print(table(["short request", "alone ms", "beside long ones ms", "ratio"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
