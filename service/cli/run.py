"""`ekko run`: serve the subjects until SIGINT or SIGTERM.

The signal handlers are installed first, so every phase (starting the bundled nats-server,
waiting for NATS, starting, serving) ends promptly on SIGTERM or SIGINT, and the bundled
nats-server is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import nats
import nats.errors

from service.app import Ekko
from service.cli import natsd
from service.cli.common import EXIT_NO_NATS, EXIT_OK, NatsUnreachable
from service.config import Settings, local_credentials_path, redacted, with_local_service_user

log = logging.getLogger("ekko")
T = TypeVar("T")
FIRST_RETRY, MAX_RETRY = 0.5, 5.0  # seconds between attempts to reach NATS: doubling, capped


class Stopped(Exception):
    """SIGTERM or SIGINT arrived before the service was serving."""


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """work's result, or Stopped (work cancelled) as soon as `stop` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise Stopped


async def _quiet(exc: Exception) -> None:
    """nats-py logs each failed attempt with a traceback; wait_for_nats logs one line each."""


async def wait_for_nats(settings: Settings, url: str, stop: asyncio.Event) -> None:
    """Return once a NATS server answers at `url` (with ekko's credentials), retrying with backoff;
    NatsUnreachable after EKKO_NATS_CONNECT_TIMEOUT seconds (0: never), Stopped when a signal
    arrives meanwhile."""
    timeout = settings.nats_connect_timeout
    started = time.monotonic()
    delay, attempt = FIRST_RETRY, 1
    while True:
        try:
            nc = await _until_stopped(
                nats.connect(
                    url,
                    connect_timeout=2,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.1,
                    error_cb=_quiet,
                    **settings.nats_options(),
                ),
                stop,
            )
            await nc.close()
            if attempt > 1:
                log.info("NATS at %s answers after %d attempts", redacted(url), attempt)
            return
        except (nats.errors.NoServersError, OSError, TimeoutError, nats.errors.Error) as exc:
            waited = time.monotonic() - started
            if timeout and waited >= timeout:
                raise NatsUnreachable(
                    f"cannot reach NATS at {redacted(url)} after {waited:.0f} s ({type(exc).__name__});"
                    " is it running? set NATS_URL, or EKKO_NATS_CONNECT_TIMEOUT to wait longer"
                ) from None
            pause = min(delay, timeout - waited) if timeout else delay
            log.warning(
                "waiting for NATS at %s (attempt %d failed: %s); next attempt in %.1f s",
                redacted(url),
                attempt,
                type(exc).__name__,
                pause,
            )
        try:
            await asyncio.wait_for(stop.wait(), pause)
            raise Stopped
        except TimeoutError:
            pass
        delay, attempt = min(delay * 2, MAX_RETRY), attempt + 1


async def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM (exit 0) or until NATS closed the connection for good
    (EXIT_NO_NATS: a process that cannot hear requests must not look alive)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    try:
        url = settings.nats_url
        if url is None:
            # In a thread: the loop keeps handling signals; a server it started is stopped below.
            starting = asyncio.ensure_future(asyncio.to_thread(natsd.ensure_local_server, settings))
            await asyncio.wait({starting, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            url, server = await starting
            if stop.is_set():
                raise Stopped
            settings = with_local_service_user(settings)
            if server is not None:
                print(
                    f"ekko: bundled nats-server users and passwords in {local_credentials_path(settings)};"
                    " connections without credentials act as `client`",
                    flush=True,
                )
        await wait_for_nats(settings, url, stop)
        ekko = Ekko(settings, url)
        try:
            await _until_stopped(ekko.start(), stop)
            print(f"ekko: serving on {redacted(url)} (Ctrl-C to stop)", flush=True)
            await _first(stop.wait(), ekko.connection_lost.wait())
            log.info("stopping: draining NATS, checkpointing DuckDB")
        finally:
            await ekko.stop()
        if ekko.connection_lost.is_set():
            log.error("exiting with status %d: NATS closed the connection; restart ekko", EXIT_NO_NATS)
            return EXIT_NO_NATS
    except Stopped:
        log.info("stopped by a signal before serving")
    finally:
        natsd.stop(server)
    return EXIT_OK


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
