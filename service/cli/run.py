"""`ekko run`: serve the subjects until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from service.app import Ekko
from service.cli import natsd
from service.cli.common import EXIT_LEASE, EXIT_OK
from service.config import Settings

log = logging.getLogger("ekko")


async def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM (exit 0) or until the writer lease is lost (EXIT_LEASE:
    another instance may be serving the deployment now)."""
    server = None
    url = settings.nats_url
    if url is None:
        url, server = natsd.ensure_local_server(settings.data_dir / "jetstream", settings.bundled_nats_port)
    try:
        ekko = Ekko(settings, url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await ekko.start()
        print(f"ekko: serving on {url} (Ctrl-C to stop)", flush=True)
        try:
            await _first(stop.wait(), ekko.lease_lost.wait())
        finally:
            log.info("stopping: draining NATS, checkpointing DuckDB")
            await ekko.stop()
        if ekko.lease_lost.is_set():
            log.error(
                "exiting with status %d: the writer lease of deployment %s was lost", EXIT_LEASE, settings.deployment
            )
            return EXIT_LEASE
        return EXIT_OK
    finally:
        natsd.stop(server)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of these finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    return await serve(settings)
