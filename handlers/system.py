"""Subjects that are not entity CRUD: login, health and admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.nats import NatsRouter

from handlers.crud import subscribe
from schema.admin import MigrateRequest
from schema.common import encode
from schema.users import AuthenticateRequest

if TYPE_CHECKING:
    from service.app import Ekko


def system_router(ekko: Ekko) -> NatsRouter:
    settings = ekko.settings
    router = NatsRouter(prefix=f"{settings.subject_prefix}.")
    options = {"workers": settings.workers_per_subject, "queue": settings.queue_group}

    async def authenticate(body: Any) -> bytes:
        return encode(await ekko.auth.authenticate(body.email, body.password))

    async def database_health() -> bytes:
        return encode(await ekko.database_health())

    async def health() -> bytes:
        return encode(await ekko.health())

    async def sync_verify() -> bytes:
        return encode(await ekko.sync_verify())

    async def sync_repair() -> bytes:
        return encode(await ekko.sync_repair())

    async def migration_check() -> bytes:
        return encode(await ekko.admin.check())

    async def migration_validate() -> bytes:
        return encode(await ekko.admin.validate())

    async def migration_migrate(body: MigrateRequest) -> bytes:
        return encode(await ekko.admin.migrate(body))

    async def backup() -> bytes:
        return encode(await ekko.admin.backup())

    subscribe(router, "users.authenticate", AuthenticateRequest, authenticate, **options)
    subscribe(router, "database.health", None, database_health, **options)
    subscribe(router, "health", None, health, **options)
    # Admin work is heavy and rare: one subscriber each, so two repairs never run at once.
    subscribe(router, "admin.sync.verify", None, sync_verify, workers=1, queue=settings.queue_group)
    subscribe(router, "admin.sync.repair", None, sync_repair, workers=1, queue=settings.queue_group)
    # One subscriber each: two migrations never run at once (a check or validate beside a
    # migration reads a consistent snapshot of before or after it).
    subscribe(router, "admin.migration.check", None, migration_check, workers=1, queue=settings.queue_group)
    subscribe(router, "admin.migration.validate", None, migration_validate, workers=1, queue=settings.queue_group)
    subscribe(router, "admin.migration.migrate", MigrateRequest, migration_migrate, workers=1, queue=settings.queue_group)
    subscribe(router, "admin.backup", None, backup, workers=1, queue=settings.queue_group)
    return router
