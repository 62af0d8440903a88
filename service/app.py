"""The composition root: `Ekko(settings, nats_url)` builds every part, once.

`start()`/`stop()` are the lifespan: `ekko run` wraps them with signal handling, tests
call them directly. The NATS connection exists only once the broker has connected, so
`start()` attaches it to the JetStream adapter that everything else already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import nats.errors
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials, NatsNKey, NatsSecurity, NatsUserPassword

from handlers.crud import entity_router
from handlers.errors import ErrorReplyMiddleware
from handlers.system import system_router
from service.config import Settings
from service.migration import auto_migrate
from service.model.registry import ENTITIES
from service.model.rules import Rules, build_rules
from service.store.database import Database
from service.store.outbox import Change
from service.sync.jetstream import JetStreamSync
from service.sync.relay import Relay
from service.usecases.admin import MigrationAdmin
from service.usecases.auth import AuthService
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService
from service.usecases.status import IntegrityLog, StatusService

NATS_DRAIN_TIMEOUT = 5.0  # seconds a clean shutdown waits for NATS to drain

log = logging.getLogger(__name__)


def broker_security(settings: Settings) -> NatsSecurity | None:
    """Who the service connects as (user:password in the URL needs nothing) and its TLS."""
    tls = settings.tls_context()
    if settings.nats_user is not None:
        return NatsUserPassword(settings.nats_user, settings.nats_password or "", ssl_context=tls)
    if settings.nats_creds is not None:
        return NatsCredentials.from_file(settings.nats_creds, ssl_context=tls)
    if settings.nats_nkey_seed is not None:
        return NatsNKey.from_file(settings.nats_nkey_seed, ssl_context=tls)
    return None if tls is None else NatsSecurity(ssl_context=tls)


class Ekko:
    """Every long-lived part of the service, wired together."""

    def __init__(self, settings: Settings, nats_url: str) -> None:
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
            security=broker_security(settings),
        )
        self.sync = JetStreamSync(
            subject_prefix=settings.subject_prefix, duplicate_window=settings.events_duplicate_window
        )
        # No relay when sync is off: nothing fills the outbox then.
        self.relay = Relay(self.db, self.sync) if settings.enable_jetstream_sync else None
        self.integrity = IntegrityLog()
        # bcrypt (hashing, login checks) on its own bounded pool: a login flood queues there.
        self.bcrypt_pool = ThreadPoolExecutor(settings.bcrypt_workers, thread_name_prefix="bcrypt")
        rules = build_rules(settings.bcrypt_rounds, self.bcrypt_pool)
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
        self.auth = AuthService(
            self.db,
            settings.bcrypt_rounds,
            pool=self.bcrypt_pool,
            max_failures=settings.login_max_failures,
            failure_window=settings.login_failure_window,
        )
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
                )
            )
        self.broker.include_router(
            system_router(settings, auth=self.auth, admin=self.admin, status=self.status, users=self.services["users"])
        )

    def _after_commit(self, changes: Sequence[Change]) -> None:
        if self.relay is not None and changes:
            self.relay.notify()

    # -- lifespan ------------------------------------------------------------
    async def start(self) -> None:
        self.db.open()
        await self.broker.connect()
        await self.sync.attach(self.broker.connection)
        if self.settings.migration_mode:
            self.integrity.record(await auto_migrate(self.settings, self.db, self.broker.connection))
        await self.auth.prepare()  # after a migration: the decoy takes the legacy hashes' cost
        if self.relay is not None:
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
            await self._close_nats()
        finally:
            self.db.close()
            self.bcrypt_pool.shutdown(wait=False, cancel_futures=True)
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
