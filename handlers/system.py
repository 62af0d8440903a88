"""Subjects that are not entity CRUD: login, health and admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faststream.nats import NatsRouter

from handlers.crud import subscribe
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

    subscribe(router, "users.authenticate", AuthenticateRequest, authenticate, **options)
    subscribe(router, "database.health", None, database_health, **options)
    subscribe(router, "health", None, health, **options)
    # Admin work is heavy and rare: one subscriber each, so two repairs never run at once.
    subscribe(router, "admin.sync.verify", None, sync_verify, workers=1, queue=settings.queue_group)
    subscribe(router, "admin.sync.repair", None, sync_repair, workers=1, queue=settings.queue_group)
    return router
