"""Subjects that are not entity CRUD: login, health and admin.

Every admin subject is audited (service.usecases.audit): one line with what, who and the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from faststream.nats import NatsRouter

from handlers.crud import Serving, subscribe
from schema.admin import MigrateRequest
from schema.common import encode
from schema.users import AuthenticateRequest, User, UserCreate, UserUpdate
from service.migration.report import BackupInfo, MigrationReport, ValidationResult
from service.sync.check import VerifyReport
from service.usecases.admin import MigrationAdmin
from service.usecases.audit import audited
from service.usecases.auth import AuthService
from service.usecases.entities import EntityService
from service.usecases.health import DatabaseHealth
from service.usecases.metrics import MetricsReport, MetricsService
from service.usecases.status import ServiceHealth, StatusService

# {<entity>: {"put", "deleted", "skipped"?}, "dead_letters": {"cleared"}}: a plain object.
RepairReport = dict[str, dict[str, int]]


def _audit(subject: str, work: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        async with audited(subject):
            return await work()

    return run


def system_router(
    serving: Serving,
    *,
    auth: AuthService,
    admin: MigrationAdmin,
    status: StatusService,
    metrics: MetricsService,
    users: EntityService,
) -> NatsRouter:
    router, listed = serving.router()
    workers, queue, prefix = serving.workers, serving.queue, serving.prefix

    async def authenticate(body: Any) -> bytes:
        return encode(await auth.authenticate(body.email, body.password))

    async def database_health() -> bytes:
        return encode(await status.database_health())

    async def health() -> bytes:
        return encode(await status.health())

    async def metrics_report() -> bytes:
        return encode(await metrics.report())

    async def sync_verify() -> bytes:
        return encode(await _audit(f"{prefix}.admin.sync.verify", status.sync_verify)())

    async def sync_repair() -> bytes:
        return encode(await _audit(f"{prefix}.admin.sync.repair", status.sync_repair)())

    async def migration_check() -> bytes:
        return encode(await _audit(f"{prefix}.admin.migration.check", admin.check)())

    async def migration_validate() -> bytes:
        return encode(await _audit(f"{prefix}.admin.migration.validate", admin.validate)())

    async def migration_migrate(body: MigrateRequest) -> bytes:
        async with audited(f"{prefix}.admin.migration.migrate", force=body.force, backup=body.backup):
            report = await admin.migrate(body)
        await auth.prepare()  # migrated users bring their hashes' cost: the decoy follows it
        return encode(report)

    async def backup() -> bytes:
        async with audited(f"{prefix}.admin.backup") as fields:
            info = await admin.backup()
            fields["path"] = info.path
            return encode(info)

    # Role (and any privileged field) is set only here; the line records the role given.
    async def users_create(body: UserCreate) -> bytes:
        async with audited(f"{prefix}.admin.users.create", role=body.role) as fields:
            user = cast(User, await users.create(body, privileged=True))
            fields["id"] = user.id
            return encode(user)

    async def users_update(body: Any) -> bytes:
        role = getattr(body, "role", None)
        async with audited(f"{prefix}.admin.users.update", id=body.id, role=role if isinstance(role, str) else None):
            return encode(await users.update(body, privileged=True))

    def serve(subject: str, request: type | None, handler: Any, reply: Any, *, single: bool = False) -> None:
        count = 1 if single else workers
        subscribe(
            router,
            subject,
            request,
            handler,
            workers=count,
            queue=queue,
            endpoints=listed,
            reply=reply,
            buffer=serving.buffer,
        )

    serve("users.authenticate", AuthenticateRequest, authenticate, User)
    serve("database.health", None, database_health, DatabaseHealth)
    serve("health", None, health, ServiceHealth)
    serve("metrics", None, metrics_report, MetricsReport)
    # Admin work is heavy and rare: one subscriber each, so two repairs never run at once.
    # One subscriber per migration subject too: a check or validate beside a migration
    # reads a consistent snapshot of before or after it.
    serve("admin.sync.verify", None, sync_verify, VerifyReport, single=True)
    serve("admin.sync.repair", None, sync_repair, RepairReport, single=True)
    serve("admin.migration.check", None, migration_check, MigrationReport, single=True)
    serve("admin.migration.validate", None, migration_validate, ValidationResult, single=True)
    serve("admin.migration.migrate", MigrateRequest, migration_migrate, MigrationReport, single=True)
    serve("admin.backup", None, backup, BackupInfo, single=True)
    serve("admin.users.create", UserCreate, users_create, User)
    serve("admin.users.update", UserUpdate, users_update, User)
    return router
