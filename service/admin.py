"""Migration and backup on the running service (`ekko.admin.migration.*`, `ekko.admin.backup`).

DuckDB lets one process open the file, so while `ekko run` holds it the CLI sends
these requests instead of opening the file itself. They run the same functions as
the CLI, through the service's own reader pool and writer, so they queue behind
in-flight writes instead of racing them. Restore and reset replace the whole
database under the service's caches and outbox: they stay offline-only (the CLI
says to stop the service).
"""

from __future__ import annotations

from collections.abc import Callable

from nats.js import JetStreamContext

from schema.admin import MigrateRequest
from service.cache import RecordCache
from service.config import Settings
from service.database import Database
from service.errors import Conflict, Unavailable
from service.migration import MigrationError, MigrationReport, ValidationResult, backup, check, migrate, validate
from service.migration.report import BackupInfo


class MigrationAdmin:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        cache: RecordCache,
        jetstream: Callable[[], JetStreamContext | None],
        remember: Callable[[ValidationResult], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.cache = cache
        self._jetstream = jetstream
        self._remember = remember  # the latest integrity result, for ekko.database.health

    def _js(self) -> JetStreamContext:
        js = self._jetstream()
        if js is None:
            raise Unavailable("JetStream is not connected")
        return js

    @property
    def backups_dir(self):
        return self.settings.data_dir / "backups"

    async def check(self) -> MigrationReport:
        return await check(self.db, self._js())

    async def validate(self) -> ValidationResult:
        result = await validate(self.db, self._js())
        self._remember(result)
        return result

    async def migrate(self, request: MigrateRequest) -> MigrationReport:
        try:
            report = await migrate(
                self.db, self._js(), force=request.force, backups_dir=self.backups_dir if request.backup else None
            )
        except MigrationError as exc:
            raise Conflict(str(exc)) from exc
        if report.status == "migrated":
            self.cache.clear()  # rows changed behind the cache's back
        if report.validation is not None:
            self._remember(report.validation)
        return report

    async def backup(self) -> BackupInfo:
        return await backup(self.db, self._jetstream(), self.backups_dir)
