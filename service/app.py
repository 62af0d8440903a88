"""The composition root: `create_app(settings)` builds every part, once.

`Ekko.start()`/`stop()` are the lifespan; `ekko run` wraps them in a FastStream
app (signals, graceful stop), tests call them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
import nats.errors
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker

from service.admin import MigrationAdmin
from service.auth import AuthService
from service.cache import RecordCache
from service.config import Settings
from service.database import Database
from service.entities import EntityService
from service.errors import Unavailable
from service.health import DatabaseHealth, database_health
from service.jetstream import JetStreamSync
from service.outbox import Change
from service.registry import ENTITIES
from service.relay import Relay
from service.rules import Rules, build_rules
from service.sync_check import VerifyReport, verify

NATS_DRAIN_TIMEOUT = 5.0  # seconds a clean shutdown waits for NATS to drain

log = logging.getLogger(__name__)


class ServiceHealth(msgspec.Struct):
    status: str
    nats: dict[str, Any]
    jetstream: dict[str, Any]
    database: DatabaseHealth


class Ekko:
    """Every long-lived part of the service, wired together."""

    def __init__(self, settings: Settings, nats_url: str) -> None:
        from handlers.crud import entity_router
        from handlers.errors import ErrorReplyMiddleware
        from handlers.system import system_router

        self.settings = settings
        self.db = Database(settings.duckdb_path, settings.duckdb_pool_size)
        self.cache = RecordCache(settings.cache_entries)
        self.broker = NatsBroker(
            nats_url,
            serializer=MsgSpecSerializer(),
            middlewares=[ErrorReplyMiddleware],
            logger=None,  # per-message logging costs more than the request itself
            max_reconnect_attempts=-1,  # ride out NATS restarts; the outbox holds changes meanwhile
            reconnect_time_wait=0.5,
        )
        self.sync: JetStreamSync | None = None
        self.relay: Relay | None = None
        self.integrity: Any = None  # last migration validation, shown in database health
        rules = build_rules(settings.bcrypt_rounds)
        self.services = {
            name: EntityService(
                spec, self.db, self.cache, rules.get(name, Rules()),
                outbox=lambda: self.settings.enable_jetstream_sync, after_commit=self._after_commit,
            )
            for name, spec in ENTITIES.items()
        }
        self.auth: AuthService | None = None
        self.admin = MigrationAdmin(
            settings, self.db, self.cache, jetstream=lambda: None if self.sync is None else self.sync.js,
            remember=lambda result: setattr(self, "integrity", result), relay=lambda: self.relay,
        )
        for service in self.services.values():
            self.broker.include_router(entity_router(
                service, prefix=settings.subject_prefix, workers=settings.workers_per_subject,
                write_workers=settings.write_workers_per_subject, queue=settings.queue_group,
            ))
        self.broker.include_router(system_router(self))

    def _after_commit(self, changes: Sequence[Change]) -> None:
        if self.relay is not None and changes:
            self.relay.notify()

    # -- lifespan ------------------------------------------------------------
    async def start(self) -> None:
        self.db.open()
        self.auth = AuthService(self.db, self.settings.bcrypt_rounds)
        await self.broker.connect()
        js = self.broker.connection.jetstream()
        self.sync = JetStreamSync(
            js, subject_prefix=self.settings.subject_prefix, duplicate_window=self.settings.events_duplicate_window
        )
        await self.sync.ensure()
        if self.settings.migration_mode:
            from service.migration import auto_migrate

            self.integrity = await auto_migrate(self.settings, self.db, self.broker.connection)
        if self.settings.enable_jetstream_sync:
            self.relay = Relay(self.db, self.sync)
            self.relay.start()
        await self.broker.start()
        log.info("ekko serving %s.* from %s", self.settings.subject_prefix, self.settings.duckdb_path)

    async def stop(self) -> None:
        """Stop taking requests, let the relay publish what is pending, close NATS, close DuckDB.
        During a NATS outage it does not wait for NATS: what the relay could not publish
        stays in the outbox for the next start."""
        try:
            for subscriber in self.broker.subscribers:
                await subscriber.stop()  # no new requests; the connection stays up for the relay
            if self.relay is not None:
                await self.relay.stop()
                self.relay = None
            await self._close_nats()
        finally:
            self.db.close()
            log.info("ekko stopped; DuckDB checkpointed and closed")

    async def _close_nats(self) -> None:
        try:
            await asyncio.wait_for(self.broker.stop(), NATS_DRAIN_TIMEOUT)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("NATS connection not drained (%s); closing it", type(exc).__name__)
            connection = self.broker.connection
            if connection is not None and not connection.is_closed:
                with contextlib.suppress(OSError, nats.errors.Error):  # the socket is gone already
                    await connection.close()

    # -- reports -------------------------------------------------------------
    async def database_health(self) -> DatabaseHealth:
        return await database_health(
            self.db, self.relay, sync_enabled=self.settings.enable_jetstream_sync, integrity=self.integrity
        )

    async def health(self) -> ServiceHealth:
        nc = self.broker.connection
        nats = {"connected": nc.is_connected, "server": nc.connected_url.netloc if nc.connected_url else None}
        jetstream: dict[str, Any] = {"ok": True}
        try:
            info = await nc.jetstream().account_info()
            jetstream["streams"] = info.streams
        except Exception as exc:  # noqa: BLE001 - a health probe reports any failure, it does not raise
            jetstream = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        database = await self.database_health()
        statuses = {database.status, "healthy" if jetstream["ok"] and nats["connected"] else "degraded"}
        status = "unhealthy" if "unhealthy" in statuses else "degraded" if "degraded" in statuses else "healthy"
        return ServiceHealth(status, nats, jetstream, database)

    async def sync_verify(self) -> VerifyReport:
        if self.sync is None:
            raise Unavailable("JetStream is not connected")
        return await verify(self.db, self.sync)

    async def sync_repair(self) -> dict[str, dict[str, int]]:
        if self.sync is None:
            raise Unavailable("JetStream is not connected")
        if self.relay is not None:
            return await self.relay.repair()
        from service.sync_check import repair

        return await repair(self.db, self.sync)


def create_app(settings: Settings, nats_url: str) -> Ekko:
    return Ekko(settings, nats_url)
