"""`ekko sync verify|repair`: compare the KV buckets with DuckDB, or rewrite them from it."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from schema.common import encode
from service.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_json_flag,
    ask_service,
    database,
    emit,
    nats_connection,
    operator,
)
from service.config import Settings
from service.model.errors import DatabaseLocked
from service.sync.check import VerifyReport, repair, verify
from service.sync.jetstream import JetStreamSync
from service.usecases.audit import audited

SERVICE_NOTE = (
    "\n\nWhile `ekko run` holds the database, the request goes to it over NATS (ekko.admin.sync.{action});"
    " otherwise this command opens the database itself."
)
VERIFY_HELP = (
    "Compare every KV bucket with DuckDB: keys missing from KV, extra in KV, and values that differ"
    " (counts and sample keys). Exit status 1 when they differ." + SERVICE_NOTE.format(action="verify")
)
REPAIR_HELP = (
    "Rewrite the KV buckets from DuckDB: put every row whose KV value is missing or different, delete"
    " KV keys DuckDB does not have." + SERVICE_NOTE.format(action="repair")
)


def add_commands(subparsers: Any) -> None:
    sync = add_command(
        subparsers,
        "sync",
        summary="compare or rebuild the KV buckets from DuckDB",
        description="Check or repair the JetStream KV buckets, the projection of DuckDB older readers use.",
    )
    actions = sync.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, summary, text in (
        ("verify", "compare every KV bucket with DuckDB", VERIFY_HELP),
        ("repair", "rewrite the KV buckets from DuckDB", REPAIR_HELP),
    ):
        parser = add_command(actions, action, summary=summary, description=text)
        add_json_flag(parser)
        parser.set_defaults(func=sync_command)


async def _sync_offline(settings: Settings, action: str) -> bytes:
    """verify/repair with the database opened here (the service is not running)."""
    async with database(settings) as db, nats_connection(settings) as nc:
        assert nc is not None  # required=True raises instead
        sync = JetStreamSync.from_settings(settings)
        await sync.attach(nc)
        if action == "verify":
            return encode(await verify(db, sync))
        async with audited("cli.sync.repair", who=operator()):
            return encode(await repair(db, sync))


def _show_verify(report: VerifyReport) -> None:
    print("KV buckets are in sync with DuckDB" if report.in_sync else "KV buckets DIFFER from DuckDB")
    for b in report.buckets:
        line = f"  {b.entity:<20} rows {b.duckdb_rows:>8}  keys {b.kv_keys:>8}"
        line += f"  missing {b.missing}  extra {b.extra}  different {b.different}"
        print(line)
        for label, sample in (
            ("missing", b.sample_missing),
            ("extra", b.sample_extra),
            ("different", b.sample_different),
        ):
            if sample:
                print(f"    {label}: {', '.join(sample)}")


def _show_repair(result: dict[str, dict[str, int]]) -> None:
    for entity, counts in result.items():
        print(f"  {entity:<20} put {counts['put']:>8}  deleted {counts['deleted']:>8}")


async def sync_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = await _sync_offline(settings, args.action)
    except DatabaseLocked:
        data = await ask_service(settings, f"admin.sync.{args.action}")
    if args.action == "verify":
        report = msgspec.json.decode(data, type=VerifyReport)
        emit(data, args.json, lambda: _show_verify(report))
        return EXIT_OK if report.in_sync else EXIT_FAILED
    result = msgspec.json.decode(data, type=dict[str, dict[str, int]])
    emit(data, args.json, lambda: _show_repair(result))
    return EXIT_OK
