"""Subjects that are not entity CRUD: login, health and admin."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from handlers.crud import subscribe
from schema.admin import MigrateRequest
from schema.common import encode
from schema.users import AuthenticateRequest
from service.config import Settings
from service.usecases.admin import MigrationAdmin
from service.usecases.auth import AuthService
from service.usecases.metrics import MetricsService
from service.usecases.status import StatusService


def system_router(
    settings: Settings, *, auth: AuthService, admin: MigrationAdmin, status: StatusService, metrics: MetricsService
) -> NatsRouter:
    router = NatsRouter(prefix=f"{settings.subject_prefix}.")
    workers, queue = settings.workers_per_subject, settings.queue_group

    async def authenticate(body: Any) -> bytes:
        return encode(await auth.authenticate(body.email, body.password))

    async def database_health() -> bytes:
        return encode(await status.database_health())

    async def health() -> bytes:
        return encode(await status.health())

    async def metrics_report() -> bytes:
        return encode(await metrics.report())

    async def sync_verify() -> bytes:
        return encode(await status.sync_verify())

    async def sync_repair() -> bytes:
        return encode(await status.sync_repair())

    async def migration_check() -> bytes:
        return encode(await admin.check())

    async def migration_validate() -> bytes:
        return encode(await admin.validate())

    async def migration_migrate(body: MigrateRequest) -> bytes:
        return encode(await admin.migrate(body))

    async def backup() -> bytes:
        return encode(await admin.backup())

    subscribe(router, "users.authenticate", AuthenticateRequest, authenticate, workers=workers, queue=queue)
    subscribe(router, "database.health", None, database_health, workers=workers, queue=queue)
    subscribe(router, "health", None, health, workers=workers, queue=queue)
    subscribe(router, "metrics", None, metrics_report, workers=workers, queue=queue)
    # Admin work is heavy and rare: one subscriber each, so two repairs never run at once.
    # One subscriber per migration subject too: a check or validate beside a migration
    # reads a consistent snapshot of before or after it.
    subscribe(router, "admin.sync.verify", None, sync_verify, workers=1, queue=queue)
    subscribe(router, "admin.sync.repair", None, sync_repair, workers=1, queue=queue)
    subscribe(router, "admin.migration.check", None, migration_check, workers=1, queue=queue)
    subscribe(router, "admin.migration.validate", None, migration_validate, workers=1, queue=queue)
    subscribe(router, "admin.migration.migrate", MigrateRequest, migration_migrate, workers=1, queue=queue)
    subscribe(router, "admin.backup", None, backup, workers=1, queue=queue)
    return router
