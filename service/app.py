"""The composition root: `Ekko(settings, nats_url)` builds every part, once.

`start()`/`stop()` are the lifespan: `ekko run` wraps them with signal handling, tests
call them directly. The NATS connection exists only once the broker has connected, so
`start()` attaches it to the JetStream adapter that everything else already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import nats.errors
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker

from handlers.crud import entity_router
from handlers.discovery import Identity, discovery_router
from handlers.errors import ErrorReplyMiddleware
from handlers.stats import Endpoints, counting_middleware
from handlers.system import system_router
from service import __version__
from service.config import Settings
from service.migration import auto_migrate
from service.model.registry import ENTITIES
from service.model.rules import Rules, build_rules
from service.store.database import Database
from service.store.outbox import Change
from service.sync.jetstream import JetStreamSync
from service.sync.lease import LeaseOwner, WriterLease
from service.sync.relay import Relay
from service.usecases.admin import MigrationAdmin
from service.usecases.auth import AuthService
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService
from service.usecases.status import IntegrityLog, StatusService

NATS_DRAIN_TIMEOUT = 5.0  # seconds a clean shutdown waits for NATS to drain

log = logging.getLogger(__name__)


class Ekko:
    """Every long-lived part of the service, wired together."""

    def __init__(self, settings: Settings, nats_url: str) -> None:
        self.settings = settings
        self.instance_id = uuid.uuid4().hex  # this process: $SRV.*.ekko.<id> and the lease name it
        self.started = datetime.now(UTC)
        self.owner = LeaseOwner(
            deployment=settings.deployment,
            instance=self.instance_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            database=str(settings.duckdb_path),
            version=__version__,
            started=self.started.isoformat(),
        )
        self.lease = WriterLease(self.owner, settings.lease_ttl)
        # Set when the writer lease is lost: serving has stopped, `ekko run` exits non-zero.
        self.lease_lost = asyncio.Event()
        self._stop_serving: asyncio.Task[None] | None = None
        self.endpoints = Endpoints()
        self.db = Database(settings.duckdb_path, settings.duckdb_pool_size)
        self.cache = RecordCache(settings.cache_entries)
        self.broker = NatsBroker(
            nats_url,
            serializer=MsgSpecSerializer(),
            middlewares=[counting_middleware(self.endpoints) if settings.endpoint_stats else ErrorReplyMiddleware],
            logger=None,  # per-message logging costs more than the request itself
            max_reconnect_attempts=-1,  # ride out NATS restarts; the outbox holds changes meanwhile
            reconnect_time_wait=0.5,
        )
        self.sync = JetStreamSync(
            subject_prefix=settings.subject_prefix, duplicate_window=settings.events_duplicate_window
        )
        # No relay when sync is off: nothing fills the outbox then.
        self.relay = Relay(self.db, self.sync) if settings.enable_jetstream_sync else None
        self.integrity = IntegrityLog()
        rules = build_rules(settings.bcrypt_rounds)
        self.services = {
            name: EntityService(
                spec,
                self.db,
                self.cache,
                rules.get(name, Rules()),
                outbox=settings.enable_jetstream_sync,
                after_commit=self._after_commit,
            )
            for name, spec in ENTITIES.items()
        }
        self.auth = AuthService(self.db, settings.bcrypt_rounds)
        self.admin = MigrationAdmin(settings, self.db, self.cache, self.sync, self.relay, self.integrity)
        self.status = StatusService(
            self.db, self.sync, self.relay, self.integrity, sync_enabled=settings.enable_jetstream_sync
        )
        for service in self.services.values():
            self.broker.include_router(
                entity_router(
                    service,
                    prefix=settings.subject_prefix,
                    workers=settings.workers_per_subject,
                    write_workers=settings.write_workers_per_subject,
                    queue=settings.queue_group,
                    endpoints=self.endpoints,
                )
            )
        self.broker.include_router(
            system_router(settings, auth=self.auth, admin=self.admin, status=self.status, endpoints=self.endpoints)
        )
        metadata = {
            "deployment": settings.deployment,
            "role": self.owner.role,
            "database": self.owner.database,
            "host": self.owner.host,
            "pid": str(self.owner.pid),
        }
        self.broker.include_router(
            discovery_router(Identity(self.instance_id, __version__, self.started, metadata), self.endpoints)
        )

    def _after_commit(self, changes: Sequence[Change]) -> None:
        if self.relay is not None and changes:
            self.relay.notify()

    # -- lifespan ------------------------------------------------------------
    async def start(self) -> None:
        """Take the writer lease first: a process that may not write this deployment touches
        neither the database nor the subjects (raises LeaseHeld)."""
        await self.broker.connect()
        try:
            await self.lease.acquire(self.broker.connection.jetstream())
        except BaseException:
            await self._close_nats()
            raise
        self.lease.keep(self._lease_lost)  # heartbeats through a long auto-migration too
        try:
            self.db.open()
            await self.sync.attach(self.broker.connection)
            if self.settings.migration_mode:
                self.integrity.record(await auto_migrate(self.settings, self.db, self.broker.connection))
            if self.relay is not None:
                self.relay.start()
            await self.broker.start()
            await self.broker.connection.flush()  # the server has every subscription: start() means serving
            if self.lease_lost.is_set():  # lost while starting (e.g. a long migration outlived NATS)
                await self._unsubscribe()
        except BaseException:
            await self.lease.release()
            raise
        log.info(
            "ekko %s serving %s.* from %s (deployment %s, instance %s)",
            __version__,
            self.settings.subject_prefix,
            self.settings.duckdb_path,
            self.settings.deployment,
            self.instance_id,
        )

    def _lease_lost(self, reason: str) -> None:
        """Another process may be serving this deployment now: stop taking requests at once."""
        log.error("%s; this instance stops serving (deployment %s)", reason, self.settings.deployment)
        self.lease_lost.set()
        self._stop_serving = asyncio.create_task(self._unsubscribe())

    async def _unsubscribe(self) -> None:
        for subscriber in self.broker.subscribers:
            await subscriber.stop()

    async def stop(self) -> None:
        """Stop taking requests, let the relay publish what is pending, close NATS, close DuckDB.
        During a NATS outage it does not wait for NATS: what the relay could not publish
        stays in the outbox for the next start."""
        try:
            for subscriber in self.broker.subscribers:
                await subscriber.stop()  # no new requests; the connection stays up for the relay
            if self.relay is not None:
                await self.relay.stop()
            await asyncio.to_thread(self.db.close)  # before the lease goes: the next owner may open this file
            await self.lease.release()
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
