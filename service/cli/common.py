"""What every `ekko` command shares: exit codes, the NATS and database connections of a
one-shot command, asking the running service, and turning failures into one clear line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Literal, NoReturn, overload

import duckdb
import msgspec
import nats
import nats.aio.client
import nats.errors

from schema.common import encode
from service.config import ENVIRONMENT, ConfigError, Settings, redacted, with_local_service_user
from service.migration.report import MigrationError
from service.model.errors import DatabaseLocked, ServiceError, StorageUnavailable
from service.store.database import Cursor, Database, connect
from service.store.ddl import apply_pending
from service.store.sql import one_row
from service.sync.buckets import BucketReadError
from service.sync.lease import LeaseHeld

EXIT_OK = 0
EXIT_FAILED = 1  # something failed or was refused
EXIT_CONFIG = 2  # bad configuration
EXIT_LOCKED = 3  # the database is held by another process
EXIT_NO_NATS = 4  # NATS unreachable
EXIT_STORAGE = 5  # the database cannot be opened or written (data directory missing, read-only, disk full)
EXIT_USAGE = 64  # the command line is wrong (EX_USAGE of sysexits.h; argparse's own 2 means bad configuration here)
EXIT_LEASE = 6  # another instance owns this deployment (writer lease held, or lost while serving)
EXIT_INTERRUPTED = 130

ONE_SHOT_POOL = 2  # reader cursors of a command's own Database: it reads little, and alone

log = logging.getLogger("ekko")


HELP_WIDTH = 88
# What every command reads; `ekko run` reads all of ENVIRONMENT.
COMMON_ENV = ("NATS_URL", "DUCKDB_PATH", "EKKO_LOG_LEVEL", "EKKO_LOG_FORMAT")
EXIT_CODES_HELP = (
    f"exit status: {EXIT_OK} done, {EXIT_FAILED} failed or refused, {EXIT_CONFIG} bad configuration,"
    f" {EXIT_LOCKED} database held by another process, {EXIT_NO_NATS} NATS unreachable, {EXIT_USAGE} wrong usage"
)


class UsageParser(argparse.ArgumentParser):
    """argparse, but a wrong command line exits EXIT_USAGE (argparse's 2 is "bad configuration"
    here). Subparsers are made of the same class, so every subcommand behaves alike."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def env_help(names: Iterable[str]) -> str:
    """The epilog of a command's --help: the environment variables it reads, and exit codes."""
    lines = ["environment variables (also read from ./.env):"]
    lines += [f"  {name:<32} {ENVIRONMENT[name]}" for name in names]
    return "\n".join([*lines, "", EXIT_CODES_HELP])


def add_command(
    subparsers: Any, name: str, *, summary: str, description: str, env: Iterable[str] = COMMON_ENV
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, its options and the variables it reads."""
    # Raw formatting keeps preformatted text (usage examples); one-line paragraphs are wrapped here.
    paragraphs = [p if "\n" in p else textwrap.fill(p, HELP_WIDTH) for p in description.strip().split("\n\n")]
    return subparsers.add_parser(
        name,
        help=summary,
        description="\n\n".join(paragraphs),
        epilog=env_help(env),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")


class NatsUnreachable(Exception):
    """A one-shot command could not reach NATS (no retries: an operator is waiting)."""


class ServiceRefused(Exception):
    """The running service answered with an error reply (its message says why)."""


def run_command(command: Callable[[], int | Coroutine[Any, Any, int]]) -> int:
    """Run a command (plain or async); the conditions an operator must act on become one line
    on stderr and their exit code. The one place that maps failures to exit codes."""
    try:
        result = command()
        return asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
    except DatabaseLocked as exc:
        print(
            "ekko: the database is held by another process, most likely the running ekko service. DuckDB allows"
            " one process per file: stop the service (`ekko run`) first, then run this again."
            f"\n  ({exc})",
            file=sys.stderr,
        )
        return EXIT_LOCKED
    except NatsUnreachable as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_NO_NATS
    except LeaseHeld as exc:
        print(f"ekko: refusing to serve: {exc}", file=sys.stderr)
        return EXIT_LEASE
    except StorageUnavailable as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except ConfigError as exc:  # a setting found unusable only when used (e.g. a port in use)
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ServiceRefused, MigrationError, BucketReadError, ServiceError) as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place every other failure becomes one line
        log.debug("the command failed", exc_info=exc)
        message = str(exc).replace("\n", " ")[:500]
        print(
            f"ekko: unexpected error: {type(exc).__name__}: {message} (EKKO_LOG_LEVEL=DEBUG shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def operator() -> str:
    """Who runs a command, for the audit log: the operating-system user (the CLI's own
    actions; what it asks the service is audited there too)."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "os:unknown"


async def _quiet(exc: Exception) -> None:
    """nats-py logs each failed attempt with a traceback; the command reports the failure once."""


async def connect_once(
    settings: Settings, error_cb: Callable[[Exception], Coroutine[Any, Any, None]] = _quiet
) -> nats.aio.client.Client:
    url = settings.nats_url or "nats://127.0.0.1:4222"
    # Beside the bundled server, a command connects as the service with the generated password.
    options = with_local_service_user(settings).nats_options()
    unreachable = f"cannot reach NATS at {redacted(url)}"
    try:
        # max_reconnect_attempts=1: nats-py retries the *first* connect too (0 means forever).
        return await nats.connect(
            url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, error_cb=error_cb, **options
        )
    except nats.errors.Error as exc:
        if "authorization" in str(exc).lower():
            raise NatsUnreachable(
                f"NATS at {redacted(url)} refused the credentials ({exc}); set NATS_USER/NATS_PASSWORD, NATS_CREDS or"
                " NATS_NKEY_SEED"
            ) from exc
        raise NatsUnreachable(f"{unreachable} ({type(exc).__name__}); is it running? set NATS_URL") from exc
    except (OSError, TimeoutError) as exc:
        raise NatsUnreachable(f"{unreachable} ({type(exc).__name__}); is it running? set NATS_URL") from exc


@contextlib.asynccontextmanager
async def nats_connection(settings: Settings) -> AsyncIterator[nats.aio.client.Client]:
    """A connection for one command; NatsUnreachable when there is none."""
    nc = await connect_once(settings)
    try:
        yield nc
    finally:
        await nc.drain()


@contextlib.asynccontextmanager
async def optional_nats_connection(settings: Settings) -> AsyncIterator[nats.aio.client.Client | None]:
    """A connection for one command, or None (and a warning) when NATS is unreachable."""
    try:
        nc = await connect_once(settings)
    except NatsUnreachable as exc:
        print(f"ekko: {exc}: the KV buckets are not backed up", file=sys.stderr)
        yield None
        return
    try:
        yield nc
    finally:
        await nc.drain()


async def ask_service(settings: Settings, subject: str, body: bytes = b"", timeout: float = 600) -> bytes:
    """One request to the running service (`<prefix>.<subject>`), for commands that cannot
    open the database while `ekko run` holds it. Admin work can take minutes: long timeout."""
    print(
        f"ekko: the running service holds {settings.duckdb_path}; asking it over NATS"
        f" ({settings.subject_prefix}.{subject})",
        file=sys.stderr,
    )
    return await request_service(settings, subject, body, timeout)


async def request_service(settings: Settings, subject: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """One request to the running service (`<prefix>.<subject>`); its error reply raises ServiceRefused,
    and so does NATS refusing the subject to this user (at once, not after the timeout)."""
    denied: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        # nats-server answers a publish it forbids with an -ERR, not a reply: without this
        # the command would wait the whole timeout.
        if "permissions violation" in str(exc).lower() and not denied.done():
            denied.set_result(str(exc))

    nc = await connect_once(settings, on_error)
    subject = f"{settings.subject_prefix}.{subject}"
    asking = asyncio.ensure_future(nc.request(subject, body, timeout=timeout))
    try:
        either: list[asyncio.Future[Any]] = [asking, denied]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if denied.done() and not asking.done():
            asking.cancel()
            raise ServiceRefused(
                f"NATS refused {subject} to this user ({denied.result()}); admin subjects need user admin"
                " (NATS_USER=admin) or the service's own user"
            )
        reply = asking.result()
    except nats.errors.NoRespondersError:
        raise ServiceRefused(f"nothing answers {subject}: is `ekko run` serving on this NATS?") from None
    except nats.errors.TimeoutError:
        raise ServiceRefused(f"no reply on {subject} within {timeout:.0f} s") from None
    finally:
        await nc.drain()
    if reply.headers and "Nats-Service-Error-Code" in reply.headers:
        raise ServiceRefused(f"the service refused: {reply.headers.get('Nats-Service-Error')}")
    return reply.data


@overload
def open_database(settings: Settings, *, read_only: Literal[False] = False) -> Database: ...
@overload
def open_database(settings: Settings, *, read_only: bool) -> Database | ReadOnlyDatabase: ...
def open_database(settings: Settings, *, read_only: bool = False) -> Database | ReadOnlyDatabase:
    """The database for one command; raises DatabaseLocked while the service holds it."""
    if read_only:
        return ReadOnlyDatabase(settings.duckdb_path)
    return Database(settings.duckdb_path, ONE_SHOT_POOL).open()


@contextlib.asynccontextmanager
async def database(settings: Settings, *, read_only: bool = False) -> AsyncIterator[Any]:
    db = open_database(settings, read_only=read_only)
    try:
        yield db
    finally:
        db.close()


def emit(result: msgspec.Struct | bytes, as_json: bool, show: Callable[[], None]) -> None:
    """Print a command's result: its JSON with --json, the human form otherwise."""
    if as_json:
        data = result if isinstance(result, bytes) else encode(result)
        sys.stdout.write(msgspec.json.format(data, indent=2).decode() + "\n")
    else:
        show()


class ReadOnlyDatabase:
    """`Database.read` on a read-only connection: check and validate neither create nor change
    the file. A missing file (or one without a schema) is compared as an empty schema in memory."""

    def __init__(self, path: Path) -> None:
        con = connect(path, read_only=True) if path.exists() else None
        if con is not None and not _has_schema(con):
            con.close()
            con = None
        self.exists = con is not None
        if con is None:
            con = duckdb.connect(":memory:")
            apply_pending(con)
        self._con: duckdb.DuckDBPyConnection = con

    async def read(self, fn: Callable[[Cursor], Any]) -> Any:
        return await asyncio.to_thread(fn, self._con)

    def close(self) -> None:
        self._con.close()


def _has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    (found,) = one_row(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'")
    return bool(found)
