"""What every `ekko` command shares: exit codes, the NATS and database connections of a
one-shot command, asking the running service, and turning failures into one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import nats
import nats.aio.client
import nats.errors

from schema.common import encode
from service.config import Settings
from service.migration.report import MigrationError
from service.model.errors import DatabaseLocked
from service.store.database import Cursor, Database, connect, first_row
from service.store.ddl import apply_pending
from service.sync.buckets import BucketReadError
from service.sync.lease import LeaseHeld

EXIT_OK = 0
EXIT_FAILED = 1  # something failed or was refused
EXIT_CONFIG = 2  # bad configuration
EXIT_LOCKED = 3  # the database is held by another process
EXIT_NO_NATS = 4  # NATS unreachable
EXIT_LEASE = 5  # another instance owns this deployment (writer lease held, or lost while serving)
EXIT_INTERRUPTED = 130

ONE_SHOT_POOL = 2  # reader cursors of a command's own Database: it reads little, and alone

log = logging.getLogger("ekko")


class NatsUnreachable(Exception):
    """A one-shot command could not reach NATS (no retries: an operator is waiting)."""


class ServiceRefused(Exception):
    """The running service answered with an error reply (its message says why)."""


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_command(command: Callable[[], int | Coroutine[Any, Any, int]]) -> int:
    """Run a command (plain or async); the conditions an operator must act on become one line
    on stderr and their exit code. The one place that maps failures to exit codes."""
    try:
        result = command()
        return asyncio.run(result) if asyncio.iscoroutine(result) else int(result)  # type: ignore[arg-type]
    except DatabaseLocked as exc:
        print(
            "ekko: the database is held by another process, most likely the running ekko service"
            f" (DuckDB allows one process per file). ({exc})",
            file=sys.stderr,
        )
        return EXIT_LOCKED
    except NatsUnreachable as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_NO_NATS
    except LeaseHeld as exc:
        print(f"ekko: refusing to serve: {exc}", file=sys.stderr)
        return EXIT_LEASE
    except (ServiceRefused, MigrationError, BucketReadError) as exc:
        print(f"ekko: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _quiet(exc: Exception) -> None:
    """nats-py logs each failed attempt with a traceback; the command reports the failure once."""


async def connect_once(settings: Settings) -> nats.aio.client.Client:
    url = settings.nats_url or "nats://127.0.0.1:4222"
    try:
        # max_reconnect_attempts=1: nats-py retries the *first* connect too (0 means forever).
        return await nats.connect(
            url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, error_cb=_quiet
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
        raise NatsUnreachable(
            f"cannot reach NATS at {url} ({type(exc).__name__}); is it running? set NATS_URL"
        ) from exc


@contextlib.asynccontextmanager
async def nats_connection(settings: Settings, *, required: bool = True) -> AsyncIterator[nats.aio.client.Client | None]:
    """A connection for one command; with required=False, None (and a warning) when unreachable."""
    try:
        nc = await connect_once(settings)
    except NatsUnreachable as exc:
        if required:
            raise
        print(f"ekko: {exc}: the KV buckets are left out", file=sys.stderr)
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
        self.exists = con is not None and _has_schema(con)
        if not self.exists:
            if con is not None:
                con.close()
            con = duckdb.connect(":memory:")
            apply_pending(con)
        self._con: duckdb.DuckDBPyConnection = con

    async def read(self, fn: Callable[[Cursor], Any]) -> Any:
        return await asyncio.to_thread(fn, self._con)

    def close(self) -> None:
        self._con.close()


def _has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    (found,) = first_row(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'")
    return bool(found)
