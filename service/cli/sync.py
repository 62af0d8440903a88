"""`ekko sync verify|repair`: compare the KV buckets with DuckDB, or rewrite them from it."""

from __future__ import annotations

import argparse

import msgspec

from schema.common import encode
from service.cli.common import EXIT_FAILED, EXIT_OK, ask_service, database, emit, nats_connection, operator
from service.config import Settings
from service.model.errors import DatabaseLocked
from service.sync.check import repair, verify
from service.sync.jetstream import JetStreamSync
from service.usecases.audit import audited


async def _sync_offline(settings: Settings, action: str) -> bytes:
    """verify/repair with the database opened here (the service is not running)."""
    async with database(settings) as db, nats_connection(settings) as nc:
        assert nc is not None  # required=True raises instead
        sync = JetStreamSync(subject_prefix=settings.subject_prefix)
        await sync.attach(nc)
        if action == "verify":
            return encode(await verify(db, sync))
        async with audited("cli.sync.repair", who=operator()):
            return encode(await repair(db, sync))


async def sync_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = await _sync_offline(settings, args.action)
    except DatabaseLocked:
        data = await ask_service(settings, f"admin.sync.{args.action}")
    report = msgspec.json.decode(data)
    emit(data, True, lambda: None)
    return EXIT_OK if args.action == "repair" or report.get("in_sync") else EXIT_FAILED
