"""What the service reports about itself: `ekko.health`, `ekko.database.health`, and the
KV sync checks `ekko.admin.sync.verify|repair`."""

from __future__ import annotations

from typing import Any

import msgspec

from service.model.errors import Unavailable
from service.store.database import Database
from service.sync.check import VerifyReport, repair, verify
from service.sync.jetstream import JetStreamSync
from service.sync.relay import Relay
from service.usecases.health import DatabaseHealth, database_health


class ServiceHealth(msgspec.Struct):
    status: str
    nats: dict[str, Any]
    jetstream: dict[str, Any]
    database: DatabaseHealth


class IntegrityLog:
    """The latest integrity result (a migration's validation), shown in database health."""

    def __init__(self) -> None:
        self.latest: Any = None

    def record(self, result: Any) -> None:
        self.latest = result


class StatusService:
    def __init__(
        self, db: Database, sync: JetStreamSync, relay: Relay | None, integrity: IntegrityLog, *, sync_enabled: bool
    ) -> None:
        self.db = db
        self.sync = sync
        self.relay = relay
        self.integrity = integrity
        self.sync_enabled = sync_enabled

    async def database_health(self) -> DatabaseHealth:
        return await database_health(
            self.db, self.relay, sync_enabled=self.sync_enabled, integrity=self.integrity.latest
        )

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
        return await verify(self.db, self.sync)

    async def sync_repair(self) -> dict[str, dict[str, int]]:
        if not self.sync.attached:
            raise Unavailable("JetStream is not connected")
        if self.relay is not None:
            return await self.relay.repair()
        return await repair(self.db, self.sync)
