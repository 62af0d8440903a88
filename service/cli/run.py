"""`ekko run`: serve the subjects until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from service.app import Ekko
from service.cli import natsd
from service.config import Settings

log = logging.getLogger("ekko")


async def serve(settings: Settings) -> None:
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
            await stop.wait()
        finally:
            log.info("stopping: draining NATS, checkpointing DuckDB")
            await ekko.stop()
    finally:
        natsd.stop(server)


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    await serve(settings)
    return 0
