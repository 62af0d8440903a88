"""A responder in its own process, so the load generator never shares its event loop.

    python -m bench.serve ekko --nats URL --db PATH [--cache-entries N] [--prefix P] [--no-stats] [--pool-size N]
    python -m bench.serve noop --nats URL [--prefix P] [--workers N]

Prints READY once it answers requests, serves until SIGTERM, then stops cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from nats.aio.client import Client

from service.config import Settings

DEFAULTS = Settings()


async def _until_terminated(nc: Client) -> None:
    await nc.flush()  # the server has every subscription before the parent hears READY
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    await stop.wait()


async def serve_ekko(args: argparse.Namespace) -> None:
    from service.app import Ekko

    settings = Settings(
        duckdb_path=Path(args.db),
        bcrypt_rounds=4,
        subject_prefix=args.prefix,
        cache_entries=args.cache_entries,
        write_workers_per_subject=args.write_workers,
        endpoint_stats=not args.no_stats,
        duckdb_pool_size=args.pool_size,
    )
    ekko = Ekko(settings, args.nats)
    await ekko.start()
    try:
        await _until_terminated(ekko.broker.connection)
    finally:
        await ekko.stop()


async def serve_noop(args: argparse.Namespace) -> None:
    """The floor: FastStream with logging and dependency injection off, answering `b"{}"` without
    touching the body.
    Subscribed like an ekko `get` subject (`workers` plain subscribers in one queue group)."""
    from faststream.nats import NatsBroker

    # Without dependency injection, as ekko runs (decision 52): the floor of a FastStream responder.
    broker = NatsBroker(args.nats, logger=None, apply_types=False)

    async def noop(_body: object) -> bytes:
        return b"{}"

    for _ in range(args.workers):
        broker.subscriber(f"{args.prefix}.wallets.get", queue="bench")(noop)
    await broker.start()
    try:
        await _until_terminated(broker.connection)
    finally:
        await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("kind", choices=["ekko", "noop"])
    parser.add_argument("--nats", required=True)
    parser.add_argument("--db")
    parser.add_argument("--prefix", default="ekko")
    parser.add_argument("--cache-entries", type=int, default=DEFAULTS.cache_entries)
    parser.add_argument("--workers", type=int, default=DEFAULTS.workers_per_subject)
    parser.add_argument("--write-workers", type=int, default=DEFAULTS.write_workers_per_subject)
    parser.add_argument("--pool-size", type=int, default=DEFAULTS.duckdb_pool_size, help="read cursors (threads)")
    parser.add_argument("--no-stats", action="store_true", help="no per-endpoint counts ($SRV.STATS): their cost")
    args = parser.parse_args()
    asyncio.run(serve_ekko(args) if args.kind == "ekko" else serve_noop(args))


if __name__ == "__main__":
    main()
