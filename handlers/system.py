"""Subjects that are not entity CRUD: login, health and admin."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from handlers.crud import subscribe
from handlers.stats import Endpoints
from schema.admin import MigrateRequest
from schema.common import encode
from schema.users import AuthenticateRequest, User
from service.config import Settings
from service.migration.report import BackupInfo, MigrationReport, ValidationResult
from service.sync.check import VerifyReport
from service.usecases.admin import MigrationAdmin
from service.usecases.auth import AuthService
from service.usecases.health import DatabaseHealth
from service.usecases.status import ServiceHealth, StatusService


def system_router(
    settings: Settings, *, auth: AuthService, admin: MigrationAdmin, status: StatusService, endpoints: Endpoints
) -> NatsRouter:
    router = NatsRouter(prefix=f"{settings.subject_prefix}.")
    listed = endpoints.prefixed(f"{settings.subject_prefix}.")
    options: dict[str, Any] = {
        "workers": settings.workers_per_subject,
        "queue": settings.queue_group,
        "endpoints": listed,
    }

    async def authenticate(body: Any) -> bytes:
        return encode(await auth.authenticate(body.email, body.password))

    async def database_health() -> bytes:
        return encode(await status.database_health())

    async def health() -> bytes:
        return encode(await status.health())

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

    subscribe(router, "users.authenticate", AuthenticateRequest, authenticate, reply=User.__name__, **options)
    subscribe(router, "database.health", None, database_health, reply=DatabaseHealth.__name__, **options)
    subscribe(router, "health", None, health, reply=ServiceHealth.__name__, **options)
    # Admin work is heavy and rare: one subscriber each, so two repairs never run at once.
    # One subscriber per migration subject too: a check or validate beside a migration
    # reads a consistent snapshot of before or after it.
    single = {**options, "workers": 1}
    subscribe(router, "admin.sync.verify", None, sync_verify, reply=VerifyReport.__name__, **single)
    subscribe(router, "admin.sync.repair", None, sync_repair, **single)  # reply: {entity: {put, deleted}}
    subscribe(router, "admin.migration.check", None, migration_check, reply=MigrationReport.__name__, **single)
    subscribe(router, "admin.migration.validate", None, migration_validate, reply=ValidationResult.__name__, **single)
    subscribe(
        router, "admin.migration.migrate", MigrateRequest, migration_migrate, reply=MigrationReport.__name__, **single
    )
    subscribe(router, "admin.backup", None, backup, reply=BackupInfo.__name__, **single)
    return router
