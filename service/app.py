"""The composition root: `Ekko(settings, nats_url)` builds every part, once.

`start()`/`stop()` are the lifespan: `ekko run` wraps them with signal handling, tests
call them directly. The NATS connection exists only once the broker has connected, so
`start()` attaches it to the JetStream adapter that everything else already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import nats.errors
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker
from faststream.nats.security import NatsCredentials, NatsNKey, NatsSecurity, NatsUserPassword

from handlers.balances import balance_router
from handlers.crud import Serving, entity_router
from handlers.discovery import Identity, discovery_router
from handlers.dropped import DroppedRequests
from handlers.prometheus import MetricsEndpoint
from handlers.reports import reports_router
from handlers.requests import parse_request, request_middleware
from handlers.stats import Endpoints
from handlers.system import system_router
from service import __version__
from service.config import Settings
from service.migration import auto_migrate
from service.model.limits import BodyBudget, PayloadLimit
from service.model.registry import ENTITIES
from service.model.rules import Rules, build_rules
from service.store.database import Database
from service.store.outbox import Change
from service.store.rollup_resort import RollupResort
from service.store.timings import QUERY_TIMES
from service.sync.barrier import sent_to_server
from service.sync.jetstream import JetStreamSync
from service.sync.lease import LeaseOwner, WriterLease
from service.sync.relay import Relay
from service.usecases.admin import MigrationAdmin
from service.usecases.auth import AuthService
from service.usecases.balances import BalanceService, derive
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService
from service.usecases.health import Instance
from service.usecases.metrics import MetricsService, RequestMetrics
from service.usecases.reports import ReportService
from service.usecases.status import IntegrityLog, StatusService

# Entities whose writes change derived balance state (service.usecases.balances.derive).
DERIVED_FROM = frozenset({"wallets", "wallet_balances"})
NATS_DRAIN_TIMEOUT = 5.0  # seconds a clean shutdown waits for NATS to drain
REQUEST_DRAIN_TIMEOUT = 15.0  # seconds a clean shutdown spends answering requests routed to it
SWITCH_INTERVAL_SECONDS = 0.0005  # how long a thread holds the GIL while another waits for it (start())

log = logging.getLogger(__name__)


class _SwitchInterval:
    """The process's GIL switch interval: SWITCH_INTERVAL_SECONDS while any instance serves
    (two may overlap in one process, as in the tests), the process's own again after."""

    def __init__(self) -> None:
        self.serving = 0
        self.saved = sys.getswitchinterval()

    def shorten(self) -> None:
        if self.serving == 0:
            self.saved = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self.serving += 1

    def restore(self) -> None:
        self.serving -= 1
        if self.serving == 0:
            sys.setswitchinterval(self.saved)


_SWITCH = _SwitchInterval()


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


async def _handed_over(subscriber: Any) -> None:
    """Until a subscriber that runs requests as tasks (decision 48) holds no request but those
    its handlers are running. FastStream queues its messages in an in-memory stream, then each
    task waits for one of `max_workers` slots; its stop drops what is still queued or waiting,
    and waits only for handlers already running. So: wait until the stream is empty and no task
    waits for a slot, twice 10 ms apart (a task just started takes its slot within a loop turn).
    A plain subscriber's drain ran every handler already."""
    stream = getattr(subscriber, "receive_stream", None)
    limiter = getattr(subscriber, "limiter", None)
    if stream is None or limiter is None:
        return

    def settled() -> bool:
        return stream.statistics().current_buffer_used == 0 and limiter.statistics().tasks_waiting == 0

    while True:
        if settled():
            await asyncio.sleep(0.01)
            if settled():
                return
        await asyncio.sleep(0.005)


class Ekko:
    """Every long-lived part of the service, wired together."""

    def __init__(self, settings: Settings, nats_url: str) -> None:
        self.settings = settings
        self.instance = Instance(settings)
        self.requests = RequestMetrics()  # the one per-subject request count (metrics, and $SRV stats)
        self.endpoints = Endpoints(self.requests)  # what $SRV.INFO lists, counted by self.requests
        # Requests nats-py drops when a subject's buffer is full get a 503 from its error callback.
        self.dropped = DroppedRequests(self.requests if settings.endpoint_stats else None)
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
        self._switch_shortened = False  # start() shortened the GIL switch interval (_SWITCH)
        self._stop_serving: asyncio.Task[None] | None = None
        # Without sync nothing relays the outbox, so nothing fills it.
        self.db = Database(settings.duckdb_path, settings.duckdb_pool_size, fill_outbox=settings.enable_jetstream_sync)
        self.cache = RecordCache(settings.cache_entries)
        self.limit = PayloadLimit()  # bound to the connection's max_payload in start()
        self.body_budget = BodyBudget(settings.inflight_body_bytes)
        # Set when NATS closed the connection for good (not by our stop()): `ekko run` then
        # exits non-zero so a supervisor restarts it, instead of living on deaf.
        self.connection_lost = asyncio.Event()
        self._stopping = False
        self.broker = NatsBroker(
            nats_url,
            serializer=MsgSpecSerializer(),
            # EKKO_ENDPOINT_STATS=false (benchmarks only) replies errors without counting.
            middlewares=[request_middleware(self.requests if settings.endpoint_stats else None, self.body_budget)],
            parser=parse_request,
            # No dependency injection: our decoders build each request's Struct, and FastDepends'
            # per-call model solving was a fifth of a cached get (decision 52).
            apply_types=False,
            logger=None,  # per-message logging costs more than the request itself
            max_reconnect_attempts=-1,  # ride out NATS restarts; the outbox holds changes meanwhile
            # nats-py sleeps this many seconds and takes a float; FastStream's annotation says int.
            reconnect_time_wait=0.5,  # type: ignore[arg-type]
            error_cb=self._nats_error,
            disconnected_cb=self._nats_disconnected,
            reconnected_cb=self._nats_reconnected,
            closed_cb=self._nats_closed,
            security=broker_security(settings),
        )
        self.sync = JetStreamSync.from_settings(settings)
        # No relay when sync is off: nothing fills the outbox then.
        self.relay = (
            Relay(self.db, self.sync, kv_check_interval=settings.kv_check_interval)
            if settings.enable_jetstream_sync
            else None
        )
        self.integrity = IntegrityLog(self.db)
        # Balance roll-ups sorted by wallet again as ingest appends to them (decision 55).
        rows = settings.rollup_resort_rows
        self.resort = RollupResort(self.db, min_rows=rows) if rows else None
        # bcrypt (hashing, login checks) on its own bounded pool: a login flood queues there.
        self.bcrypt_pool = ThreadPoolExecutor(settings.bcrypt_workers, thread_name_prefix="bcrypt")
        rules = build_rules(settings.bcrypt_rounds, self.bcrypt_pool)
        self.services = {
            name: EntityService(
                spec,
                self.db,
                self.cache,
                rules.get(name, Rules()),
                after_commit=self._after_commit,
                limit=self.limit,
                derive=derive if name in DERIVED_FROM else None,
            )
            for name, spec in ENTITIES.items()
        }
        self.db.on_deferred_changes = self._deferred_changes
        self.balances = BalanceService(self.db, self.cache, after_commit=self._after_commit, limit=self.limit)
        self.auth = AuthService(
            self.db,
            settings.bcrypt_rounds,
            pool=self.bcrypt_pool,
            max_failures=settings.login_max_failures,
            failure_window=settings.login_failure_window,
        )
        self.reports = ReportService(self.db)
        self.admin = MigrationAdmin(settings, self.db, self.cache, self.sync, self.relay, self.integrity)
        self.status = StatusService(
            self.db,
            self.sync,
            self.relay,
            self.integrity,
            self.instance,
            sync_enabled=settings.enable_jetstream_sync,
            resort=self.resort,
        )
        self.metrics = MetricsService(self.db, self.relay, self.cache, self.integrity, self.instance, self.requests)
        self.metrics_endpoint = (
            MetricsEndpoint(self.metrics, settings.metrics_port) if settings.metrics_port is not None else None
        )
        metadata = {
            "deployment": settings.deployment,
            "role": self.owner.role,
            "database": self.owner.database,
            "host": self.owner.host,
            "pid": str(self.owner.pid),
        }
        serving = Serving.from_settings(settings, self.endpoints)
        # In this order: $SRV.INFO lists the subjects as they were registered.
        routers = [
            *(entity_router(service, serving) for service in self.services.values()),
            balance_router(self.balances, serving),
            system_router(
                serving,
                auth=self.auth,
                admin=self.admin,
                status=self.status,
                metrics=self.metrics,
                users=self.services["users"],
            ),
            reports_router(self.reports, serving),
            discovery_router(Identity(self.instance_id, __version__, self.started, metadata), self.endpoints),
        ]
        for router in routers:
            self.broker.include_router(router)

    def _deferred_changes(self, changes: Sequence[Change]) -> None:
        """Changes a group's shared work recorded (wallets whose balance followed their rows)."""
        self.cache.apply(changes)
        self._after_commit(changes)

    def _after_commit(self, changes: Sequence[Change]) -> None:
        if self.relay is not None and changes:
            self.relay.notify()

    # -- NATS connection events ----------------------------------------------
    async def _nats_error(self, exc: Exception) -> None:
        """nats-py awaits this inside its read loop: an exception raised here would end the loop
        (the connection would stop reading, without a reconnect), so none leaves."""
        try:
            # A request nats-py dropped unseen (its buffer full): answered 503 instead of logged.
            if isinstance(exc, nats.errors.SlowConsumerError) and await self.dropped.answer(
                self.broker.connection, exc
            ):
                return
            log.error("NATS connection error: %s: %s", type(exc).__name__, exc)
        except Exception:
            log.exception("handling a NATS connection error failed")

    async def _nats_disconnected(self) -> None:
        if not self._stopping:
            log.warning("NATS disconnected")

    async def _nats_reconnected(self) -> None:
        log.warning("NATS reconnected to %s", self.broker.connection.connected_url)

    async def _nats_closed(self) -> None:
        """nats-py gave up on the connection: the server closed it with an error (it does not
        reconnect after e.g. 'Maximum Payload Violation') or reconnects were exhausted."""
        if self._stopping:
            return
        last = self.broker.connection.last_error if self.broker.connection is not None else None
        log.error("NATS closed the connection for good (last error: %r); ekko stops serving", last)
        self.connection_lost.set()

    # -- lifespan ------------------------------------------------------------
    async def start(self) -> None:
        """Take the writer lease first: a process that may not write this deployment touches
        neither the database nor the subjects (raises LeaseHeld)."""
        slow_ms = self.settings.slow_query_ms
        QUERY_TIMES.slow_after = slow_ms / 1000 if slow_ms > 0 else None
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()  # first: a port in use stops the start before anything else began
        await self.broker.connect()
        try:
            await self.lease.acquire(self.broker.connection.jetstream())
        except BaseException:
            await self._close_nats()
            raise
        self.lease.keep(self._lease_lost)  # heartbeats through a long auto-migration too
        try:
            self.db.open()
            await self.integrity.load()
            await self.sync.attach(self.broker.connection)
            connection = self.broker.connection
            self.limit.bind(lambda: connection.max_payload)  # the live server's, updated on reconnect
            if self.settings.migration_mode:
                await self.integrity.record(await auto_migrate(self.settings, self.db, self.broker.connection))
            await self.auth.prepare()  # after a migration: the decoy takes the legacy hashes' cost
            if self.relay is not None:
                self.relay.start()
            if self.resort is not None:
                self.resort.start()
            await self.broker.start()
            await sent_to_server(self.broker.connection)  # the server has every subscription once start() returns
            if self.lease_lost.is_set():  # lost while starting (e.g. a long migration outlived NATS)
                await self._unsubscribe()
        except BaseException:
            await self.lease.release()
            raise
        info = self.instance.info()
        log.info(
            "ekko %s serving %s.* from %s (deployment %s, instance %s)",
            info.version,
            self.settings.subject_prefix,
            info.database,
            info.deployment,
            self.instance_id,
            extra={"deployment": info.deployment, "version": info.version, "database": info.database, "pid": info.pid},
        )
        # What start() built (routers, subscribers, FastStream's per-subscriber call wrappers:
        # ~145k objects) lives until stop(). Left to the collector, every full collection walks it
        # all: a pause of 100-200 ms in the middle of serving (decision 42). Frozen, it is skipped.
        # No collection first: it would cost that pause once per start (in the tests, per test);
        # what little garbage gets frozen with it is freed after stop().
        gc.freeze()
        # The writer and pool threads run DuckDB with the GIL released; each statement's return
        # then waits for the GIL, which the event loop (decoding, checking a 5,000-item ingest)
        # is asked to drop only after the switch interval: 5 ms by default, several per write
        # transaction. At 0.5 ms ingests ran 6-10% faster, reads and creates unchanged
        # (decision 45). Process-wide, like the freeze: put back when the last instance stops.
        if not self._switch_shortened:
            _SWITCH.shorten()
            self._switch_shortened = True

    def _lease_lost(self, reason: str) -> None:
        """Another process may be serving this deployment now: stop taking requests at once."""
        log.error("%s; this instance stops serving (deployment %s)", reason, self.settings.deployment)
        self.lease_lost.set()
        self._stop_serving = asyncio.create_task(self._unsubscribe())

    async def _unsubscribe(self) -> None:
        for subscriber in self.broker.subscribers:
            with contextlib.suppress(nats.errors.ConnectionClosedError):
                await subscriber.stop()

    async def _drain_requests(self) -> None:
        """Answer the requests NATS has routed here already: each subscription tells the server
        to stop sending (UNSUB, then a round trip) and hands its pending messages to its
        handlers as usual (nats-py's drain). FastStream's own stop would drop them unanswered:
        a caller of a rolling restart would wait out its timeout instead of being answered, or
        finding no responder and trying the next instance. Bounded by REQUEST_DRAIN_TIMEOUT;
        skipped when NATS is away (nothing could reach the callers) and after the writer lease
        was lost (the stop must then be immediate)."""
        connection = self.broker.connection if self.broker.running else None
        if connection is None or not connection.is_connected or self.lease_lost.is_set():
            return  # NATS away, or another process may serve the deployment now

        async def drain(subscriber: Any) -> None:
            subscription = subscriber.subscription
            try:
                with contextlib.suppress(nats.errors.Error):
                    await subscription.drain()
            finally:  # closed now, drained or not: FastStream's stop must not unsubscribe it again
                subscriber.subscription = None
            await _handed_over(subscriber)

        subscribers = [s for s in self.broker.subscribers if getattr(s, "subscription", None) is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(drain(s) for s in subscribers)), REQUEST_DRAIN_TIMEOUT)
        except TimeoutError:
            log.warning("requests still queued after %.0f s of draining; the rest get no reply", REQUEST_DRAIN_TIMEOUT)

    async def stop(self) -> None:
        """Stop taking requests, let the relay publish what is pending, close NATS, close DuckDB.
        During a NATS outage it does not wait for NATS: what the relay could not publish
        stays in the outbox for the next start. Also after a start that failed half-way."""
        log.info(
            "ekko stopping: no new requests, relaying what is pending", extra={"uptime": self.instance.uptime_seconds}
        )
        was_open = self.db.is_open
        self._stopping = True
        try:
            if self.metrics_endpoint is not None:
                await asyncio.to_thread(self.metrics_endpoint.stop)
            await self._drain_requests()
            for subscriber in self.broker.subscribers:
                # No new requests; the connection stays up for the relay (unless NATS closed it).
                with contextlib.suppress(nats.errors.ConnectionClosedError):
                    await subscriber.stop()
            if self.resort is not None:
                await self.resort.stop()  # a copy under way holds a cursor: interrupted, waited for
            if self.relay is not None:
                await self.relay.stop()
            await asyncio.to_thread(self.db.close)  # before the lease goes: the next owner may open this file
            await self.lease.release()
            await self._close_nats()
        finally:
            gc.unfreeze()  # what start() froze can be collected once this instance is gone
            if self._switch_shortened:
                _SWITCH.restore()
                self._switch_shortened = False
            self.bcrypt_pool.shutdown(wait=False, cancel_futures=True)
            if not self.db.close():
                log.error(
                    "ekko stopped; the DuckDB checkpoint FAILED (%s): the WAL is replayed at next start",
                    self.db.checkpoint_error,
                )
            elif was_open:
                log.info("ekko stopped; DuckDB checkpointed and closed")

    async def _close_nats(self) -> None:
        if self.sync.attached and self.sync.connection.is_closed:
            return  # NATS closed it already: nothing to drain, and unsubscribing would raise
        try:
            await asyncio.wait_for(self.broker.stop(), NATS_DRAIN_TIMEOUT)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("NATS connection not drained (%s); closing it", type(exc).__name__)
            connection = self.broker.connection
            if connection is not None and not connection.is_closed:
                with contextlib.suppress(OSError, nats.errors.Error):  # the socket is gone already
                    await connection.close()
