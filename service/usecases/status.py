"""What the service reports about itself: `ekko.health`, `ekko.database.health`, and the
KV sync checks `ekko.admin.sync.verify|repair`."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from schema.common import encode
from service.migration import ValidationResult
from service.model.errors import Unavailable
from service.store.database import Database
from service.store.integrity import latest_integrity, record_integrity
from service.store.rollup_resort import RollupResort
from service.sync.check import VerifyReport, repair, verify
from service.sync.jetstream import JetStreamSync
from service.sync.relay import Relay
from service.usecases.health import DatabaseHealth, Instance, database_health

log = logging.getLogger(__name__)


class ServiceHealth(msgspec.Struct):
    status: str
    nats: dict[str, Any]
    jetstream: dict[str, Any]
    database: DatabaseHealth


class IntegrityLog:
    """The latest integrity result (a migration's validation), shown in database health and
    metrics. Kept in DuckDB too (`integrity_log`), where `ekko migrate` run offline leaves its own."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.latest: ValidationResult | None = None

    async def load(self) -> None:
        """Read the latest check from the database (at start)."""
        data = await self.db.read(latest_integrity)
        if data is None:
            return
        try:
            self.latest = msgspec.json.decode(data, type=ValidationResult)
        except msgspec.ValidationError as exc:  # written by an older version in another shape
            log.warning("the stored integrity result is unreadable (%s); health shows none", exc)

    async def record(self, result: ValidationResult) -> None:
        data = encode(result)
        await self.db.write(lambda uow: record_integrity(uow.cursor, result.checked_at, result.ok, data))
        self.latest = result
        log.info(
            "integrity check %s",
            "passed" if result.ok else "FAILED",
            extra={"ok": result.ok, "checked_at": result.checked_at.isoformat()},
        )


class StatusService:
    def __init__(
        self,
        db: Database,
        sync: JetStreamSync,
        relay: Relay | None,
        integrity: IntegrityLog,
        instance: Instance,
        *,
        sync_enabled: bool,
        resort: RollupResort | None = None,
    ) -> None:
        self.db = db
        self.instance = instance
        self.sync = sync
        self.relay = relay
        self.integrity = integrity
        self.sync_enabled = sync_enabled
        self.resort = resort

    async def database_health(self) -> DatabaseHealth:
        health = await database_health(
            self.db, self.relay, sync_enabled=self.sync_enabled, integrity=self.integrity.latest, resort=self.resort
        )
        health.deployment = self.instance.settings.deployment
        health.uptime_seconds = self.instance.uptime_seconds
        return health

    async def health(self) -> ServiceHealth:
        nc = self.sync.connection
        nats = {"connected": nc.is_connected, "server": nc.connected_url.netloc if nc.connected_url else None}
        jetstream: dict[str, Any] = {"ok": True}
        try:
            info = await nc.jetstream().account_info()
            jetstream["streams"] = info.streams
            # A deleted bucket shows here at once; the relay recreates it within kv_check_interval.
            if missing := sorted(await self.sync.missing_buckets()):
                jetstream.update(ok=False, missing_buckets=missing, error=f"KV buckets missing: {', '.join(missing)}")
        except Exception as exc:  # noqa: BLE001 - a health probe reports any failure, it does not raise
            jetstream = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        database = await self.database_health()
        statuses = {database.status, "healthy" if jetstream["ok"] and nats["connected"] else "degraded"}
        status = "unhealthy" if "unhealthy" in statuses else "degraded" if "degraded" in statuses else "healthy"
        return ServiceHealth(status, nats, jetstream, database)

    async def sync_verify(self) -> VerifyReport:
        if not self.sync.attached:
            raise Unavailable("JetStream is not connected")
        report = await verify(self.db, self.sync)
        outcome = "in sync" if report.in_sync else "differences found"
        log.info("admin: sync verify: %s", outcome, extra={"action": "sync.verify", "in_sync": report.in_sync})
        return report

    async def sync_repair(self) -> dict[str, dict[str, int]]:
        if not self.sync.attached:
            raise Unavailable("JetStream is not connected")
        log.info("admin: sync repair: rewriting the KV buckets from DuckDB", extra={"action": "sync.repair"})
        if self.relay is not None:
            return await self.relay.repair()
        return await repair(self.db, self.sync)
