"""Issue 2: `ekko.wallets.get` against the floor of a FastStream no-op responder.

One nats-server; the no-op responder and the service each in their own process;
the load generator here: 64 requests in flight, random ids from the seeded set.
Rounds alternate no-op / ekko (cache) / ekko without per-endpoint counting / ekko (no
cache); each figure is the median over rounds, each ratio the median of the per-round
ratios (same round, same noise). Goals: get throughput >= 0.8x the no-op's, get p50 <=
1.25x the no-op's; counting requests for $SRV.STATS costs at most 5% of get throughput.

    python -m bench.get_bench [--quick] [--wallets N] [--requests N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import (
    Run,
    closed_loop,
    connect,
    is_error,
    median_of,
    nats_server,
    outbox_drained,
    responder,
    table,
    verdict,
)

INFLIGHT = 64
GOAL_RATE = 0.8  # get throughput / no-op throughput, at least
GOAL_P50 = 1.25  # get p50 / no-op p50, at most
GOAL_STATS = 0.95  # get throughput with counting / without, at least
# Under ekko.: nats-server.conf lets the service user (the responders) subscribe to ekko.> only.
NOOP_PREFIX = "ekko.noop"


def wallet_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def wallet_body(n: int) -> bytes:
    return json.dumps(
        {
            "id": wallet_id(n),
            "blockchain_symbol": "ETH",
            "address": f"0x{n:040x}",
            "name": f"bench {n}",
            "balance": "1.5",
        }
    ).encode()


async def seed(url: str, count: int) -> None:
    """Create the wallets and wait for the relay, so the runs start with an empty outbox."""
    nc = await connect(url)
    try:
        for start in range(0, count, 32):
            batch = range(start, min(count, start + 32))
            replies = await asyncio.gather(*(nc.request("ekko.wallets.create", wallet_body(n), 10) for n in batch))
            if bad := [r for r in replies if is_error(r)]:
                raise RuntimeError(f"seeding failed: {bad[0].headers} {bad[0].data!r}")
        await outbox_drained(nc)
    finally:
        await nc.drain()


def get_payloads(rng: random.Random, wallets: int, count: int) -> list[bytes]:
    return [json.dumps({"id": wallet_id(rng.randrange(wallets))}).encode() for _ in range(count)]


async def measure(url: str, subject: str, warmup: Sequence[bytes], payloads: Sequence[bytes]) -> Run:
    nc = await connect(url)
    try:
        await closed_loop(nc, subject, warmup, INFLIGHT)
        run = await closed_loop(nc, subject, payloads, INFLIGHT)
    finally:
        await nc.drain()
    if run.errors:
        raise RuntimeError(f"{subject}: {run.errors} error replies")
    return run


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> bool:
    noop = runs["no-op"]

    def ratio(variant: str, metric: Callable[[Run], float]) -> float:
        return statistics.median(metric(r) / metric(n) for r, n in zip(runs[variant], noop, strict=True))

    print("\nrounds (req/s, p50):")
    for i in range(args.rounds):
        figures = (f"{v} {rs[i].rate:,.0f}/s {rs[i].p(50) * 1e6:,.0f}us" for v, rs in runs.items())
        print(f"  round {i + 1}: " + "; ".join(figures))
    rows = []
    for variant, rs in runs.items():
        rows.append(
            [
                variant,
                f"{median_of(rs, lambda r: r.rate):,.0f}",
                f"{median_of(rs, lambda r: r.p(50)) * 1e6:,.0f}",
                f"{median_of(rs, lambda r: r.p(99)) * 1e6:,.0f}",
                f"{ratio(variant, lambda r: r.rate):.2f}x",
                f"{ratio(variant, lambda r: r.p(50)):.2f}x",
            ]
        )
    print(
        f"\nwallets.get: {args.wallets} wallets, {INFLIGHT} in flight, {args.requests:,} requests/run "
        f"({args.requests // 4:,} without cache); medians of {args.rounds} rounds, ratios per round"
    )
    print(table(["responder", "req/s", "p50 us", "p99 us", "rate / no-op", "p50 / no-op"], rows))
    rate, p50 = ratio("ekko get", lambda r: r.rate), ratio("ekko get", lambda r: r.p(50))
    ok = rate >= GOAL_RATE and p50 <= GOAL_P50
    print(
        f"goal: throughput >= {GOAL_RATE}x no-op: {verdict(rate >= GOAL_RATE)} ({rate:.2f}x); "
        f"p50 <= {GOAL_P50}x no-op: {verdict(p50 <= GOAL_P50)} ({p50:.2f}x)"
    )
    cold = ratio("ekko get, no cache", lambda r: r.rate)
    print(f"the cache buys {rate / cold:.1f}x throughput (no cache: {cold:.2f}x no-op)")
    counted = statistics.median(
        r.rate / n.rate for r, n in zip(runs["ekko get"], runs["ekko get, stats off"], strict=True)
    )
    p50_counted = statistics.median(
        r.p(50) / n.p(50) for r, n in zip(runs["ekko get"], runs["ekko get, stats off"], strict=True)
    )
    print(
        f"goal: throughput with $SRV.STATS counting >= {GOAL_STATS}x without: "
        f"{verdict(counted >= GOAL_STATS)} ({counted:.3f}x; p50 {p50_counted:.3f}x)"
    )
    return ok and counted >= GOAL_STATS


async def run(args: argparse.Namespace) -> bool:
    rng = random.Random(2)
    with nats_server() as (server, tmp):
        db = str(Path(tmp) / "ekko.db")
        variants = {
            "no-op": None,
            "ekko get": ("--db", db),
            "ekko get, stats off": ("--db", db, "--no-stats"),
            "ekko get, no cache": ("--db", db, "--cache-entries", "0"),
        }
        print(f"seeding {args.wallets} wallets ...", flush=True)
        with responder("ekko", server.url, "--db", db):
            await seed(server.url, args.wallets)
        runs: dict[str, list[Run]] = {v: [] for v in variants}
        every_id = [json.dumps({"id": wallet_id(n)}).encode() for n in range(args.wallets)]
        with responder("noop", server.url, "--prefix", NOOP_PREFIX):
            for round_no in range(args.rounds):
                order = list(variants)
                if round_no % 2:  # counting on and off take turns going first: no order bias in their ratio
                    order[1], order[2] = order[2], order[1]
                for variant in order:
                    options = variants[variant]
                    # a fresh service each run: the cache starts empty, the warm-up touches every id once
                    warmup = every_id + get_payloads(rng, args.wallets, args.warmup)
                    # DuckDB reads are ~10x slower: fewer requests keep the run short, still 5,000 samples
                    count = args.requests // 4 if "no cache" in variant else args.requests
                    payloads = get_payloads(rng, args.wallets, count)
                    if options is None:
                        result = await measure(server.url, f"{NOOP_PREFIX}.wallets.get", warmup, payloads)
                    else:
                        with responder("ekko", server.url, *options):
                            result = await measure(server.url, "ekko.wallets.get", warmup, payloads)
                    runs[variant].append(result)
                    print(f"  round {round_no + 1} {variant}: {result.rate:,.0f} req/s", flush=True)
        return report(runs, args)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.get_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (200 wallets, 2,000 requests, 1 round)")
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.wallets, args.requests, args.warmup, args.rounds = 200, 2_000, 500, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Returns 0 when the goals are met, 1 when not (the figures are printed either way)."""
    return 0 if asyncio.run(run(parse(argv))) else 1


if __name__ == "__main__":
    raise SystemExit(main())
