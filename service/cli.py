"""`ekko` command line: run the service, check and repair the KV sync, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import msgspec
import nats
import nats.aio.client
import nats.errors

from service.config import ConfigError, Settings
from service.errors import DatabaseLocked

log = logging.getLogger("ekko")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def serve(settings: Settings) -> None:
    from service import natsd
    from service.app import create_app

    server = None
    url = settings.nats_url
    if url is None:
        url, server = natsd.ensure_local_server(settings.data_dir / "jetstream", settings.bundled_nats_port)
    try:
        ekko = create_app(settings, url)
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


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0


async def _quiet(exc: Exception) -> None:
    """nats-py logs each failed attempt with a traceback; the command reports the failure once."""


class NatsUnreachable(Exception):
    """A one-shot command could not reach NATS (no retries: an operator is waiting)."""


async def connect_once(settings: Settings) -> nats.aio.client.Client:
    url = settings.nats_url or "nats://127.0.0.1:4222"
    try:
        # max_reconnect_attempts=1: nats-py retries the *first* connect too (0 means forever).
        return await nats.connect(
            url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, error_cb=_quiet
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
        raise NatsUnreachable(f"cannot reach NATS at {url} ({type(exc).__name__}); is it running? set NATS_URL") from exc


async def _sync_offline(settings: Settings, action: str) -> bytes:
    """verify/repair with the database opened here (the service is not running)."""
    from schema.common import encode
    from service.database import Database
    from service.jetstream import JetStreamSync
    from service.sync_check import repair, verify

    db = Database(settings.duckdb_path, 2).open()
    try:
        nc = await connect_once(settings)
    except NatsUnreachable:
        db.close()
        raise
    try:
        sync = JetStreamSync(nc.jetstream(), subject_prefix=settings.subject_prefix)
        await sync.ensure()
        return encode(await (verify(db, sync) if action == "verify" else repair(db, sync)))
    finally:
        await nc.drain()
        db.close()


class ServiceRefused(Exception):
    """The running service answered with an error reply (its message says why)."""


async def ask_service(settings: Settings, subject: str, body: bytes = b"", timeout: float = 600) -> bytes:
    """One request to the running service (`<prefix>.<subject>`), for commands that cannot
    open the database while `ekko run` holds it. Admin work can take minutes: long timeout."""
    nc = await connect_once(settings)
    subject = f"{settings.subject_prefix}.{subject}"
    try:
        reply = await nc.request(subject, body, timeout=timeout)
    except nats.errors.NoRespondersError:
        raise ServiceRefused(f"nothing answers {subject}: is `ekko run` serving on this NATS?") from None
    except nats.errors.TimeoutError:
        raise ServiceRefused(f"no reply on {subject} within {timeout:.0f} s") from None
    finally:
        await nc.drain()
    if reply.headers and "Nats-Service-Error-Code" in reply.headers:
        raise ServiceRefused(f"the service refused: {reply.headers.get('Nats-Service-Error')}")
    return reply.data


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = asyncio.run(_sync_offline(settings, args.action))
    except DatabaseLocked:
        print("ekko: the service holds the database; asking it over NATS", file=sys.stderr)
        data = asyncio.run(ask_service(settings, f"admin.sync.{args.action}"))
    report = msgspec.json.decode(data)
    print(msgspec.json.format(data, indent=2).decode())
    return 0 if args.action == "repair" or report.get("in_sync") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ekko", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the ekko.* subjects")
    run.set_defaults(func=cmd_run)
    sync = sub.add_parser("sync", help="compare or rebuild the KV buckets from DuckDB")
    sync.add_argument("action", choices=["verify", "repair"])
    sync.set_defaults(func=cmd_sync)
    with contextlib.suppress(ImportError):
        from service.migration.cli import add_commands

        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    try:
        return args.func(args, settings)
    except DatabaseLocked as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return 3
    except NatsUnreachable as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return 4
    except ServiceRefused as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
