"""Migration and backup on the running service (`ekko.admin.migration.*`, `ekko.admin.backup`).

DuckDB lets one process open the file, so while `ekko run` holds it the CLI sends
these requests instead of opening the file itself. They run the same functions as
the CLI, through the service's own reader pool and writer, so they queue behind
in-flight writes instead of racing them. Restore and reset replace the whole
database under the service's caches and outbox: they stay offline-only (the CLI
says to stop the service).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from nats.js import JetStreamContext

from schema.admin import MigrateRequest
from service.config import Settings
from service.migration import MigrationError, MigrationReport, ValidationResult, backup, check, migrate, validate
from service.migration.backups import prune_backups
from service.migration.core import log_report
from service.migration.report import BackupInfo
from service.model.errors import Conflict, Unavailable
from service.store.database import Database
from service.sync.jetstream import JetStreamSync
from service.sync.relay import Relay
from service.usecases.cache import RecordCache
from service.usecases.status import IntegrityLog

log = logging.getLogger(__name__)

FAILURE_SAMPLE = 100
RELAY_WAIT = 10.0  # seconds validate waits for the relay to publish what is pending


class MigrationAdmin:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        cache: RecordCache,
        sync: JetStreamSync,
        relay: Relay | None,
        integrity: IntegrityLog,
    ) -> None:
        self.settings = settings
        self.db = db
        self.cache = cache
        self.sync = sync
        self.relay = relay
        self.integrity = integrity  # the latest integrity result, for ekko.database.health

    async def _relay_caught_up(self, timeout: float = RELAY_WAIT) -> None:
        """Validation compares KV with DuckDB: while the relay has changes to publish, KV is
        behind and every one of them would show as a difference. Wait for it (bounded)."""
        relay = self.relay
        if relay is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while (pending := await relay.pending()) and asyncio.get_running_loop().time() < deadline:
            relay.notify()
            await asyncio.sleep(0.05)
        if pending:
            raise Unavailable(
                f"the relay still has {pending} changes to publish to KV (is NATS up?); validate again when"
                " `ekko.database.health` shows sync.pending 0"
            )

    def _relay_paused(self) -> contextlib.AbstractAsyncContextManager[None]:
        relay = self.relay
        return contextlib.nullcontext() if relay is None else relay.paused()

    def _js(self) -> JetStreamContext:
        if not self.sync.attached:
            raise Unavailable("JetStream is not connected")
        return self.sync.js

    @property
    def backups_dir(self) -> Path:
        return self.settings.data_dir / "backups"

    async def check(self) -> MigrationReport:
        log.info("admin: migration check requested", extra={"action": "migration.check"})
        async with _reported():
            return _sampled(await check(self.db, self._js()))

    async def validate(self) -> ValidationResult:
        log.info("admin: integrity validation requested", extra={"action": "migration.validate"})
        await self._relay_caught_up()
        async with _reported():
            result = await validate(self.db, self._js())
        await self.integrity.record(result)
        return result

    async def migrate(self, request: MigrateRequest) -> MigrationReport:
        if request.force:
            # KV trails DuckDB while the service runs (relay backlog, outages), so "KV wins"
            # could roll rows back behind changes still waiting in the outbox.
            raise Conflict(
                "force is refused while the service runs: it would overwrite rows changed since KV was written;"
                " stop the service and run `ekko migrate --force`"
            )
        backups_dir = self.backups_dir if request.backup else None
        log.info("admin: migration requested", extra={"action": "migration.migrate", "backup": request.backup})
        async with _reported():
            report = await migrate(self.db, self._js(), backups_dir=backups_dir, relay_paused=self._relay_paused)
        log_report(report)
        if report.backup is not None:
            prune_backups(self.backups_dir, self.settings.backup_keep)
        if report.status == "migrated":
            self.cache.clear()  # rows changed behind the cache's back
        if report.validation is not None:
            await self.integrity.record(report.validation)
        return _sampled(report)

    async def backup(self) -> BackupInfo:
        log.info("admin: backup requested", extra={"action": "backup"})
        async with _reported():
            js = self.sync.js if self.sync.attached else None
            return await backup(self.db, js, self.backups_dir, keep=self.settings.backup_keep)


@contextlib.asynccontextmanager
async def _reported() -> AsyncIterator[None]:
    """A migration that cannot run (e.g. a bucket that stops answering) is a 503 with its
    message, not an internal error."""
    try:
        yield
    except MigrationError as exc:
        raise Unavailable(str(exc)) from exc


def _sampled(report: MigrationReport) -> MigrationReport:
    """At most FAILURE_SAMPLE failures per bucket: a reply must fit NATS's max_payload (1 MiB
    by default) whatever the legacy data holds. The counts stay exact; the CLI run offline
    (or with --json on the service's host) lists every failure."""
    for bucket in report.buckets:
        if len(bucket.failures) > FAILURE_SAMPLE:
            bucket.failures = bucket.failures[:FAILURE_SAMPLE]
    return report
