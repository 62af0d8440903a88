"""`ekko run`: serve the subjects until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from service.app import Ekko
from service.cli import natsd
from service.config import Settings, local_credentials_path, redacted, with_local_service_user

log = logging.getLogger("ekko")


async def serve(settings: Settings) -> None:
    server = None
    url = settings.nats_url
    if url is None:
        url, server = natsd.ensure_local_server(settings)
        settings = with_local_service_user(settings)
        if server is not None:
            print(
                f"ekko: bundled nats-server users and passwords in {local_credentials_path(settings)};"
                " connections without credentials act as `client`",
                flush=True,
            )
    try:
        ekko = Ekko(settings, url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await ekko.start()
        print(f"ekko: serving on {redacted(url)} (Ctrl-C to stop)", flush=True)
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
