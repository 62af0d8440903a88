"""`ekko migrate` and `ekko db`: migrate the legacy JetStream KV buckets into DuckDB; back up, restore, reset.

    ekko migrate --check-only [--verbose] [--json]     what is there, what a migration would do
    ekko migrate [--no-backup] [--force] [--json]      back up, migrate, validate
    ekko migrate --validate [--json]                   integrity of DuckDB against the buckets
    ekko migrate --restore-backup PATH [--restore-kv]  DuckDB (and the buckets) from a backup
    ekko db reset [--yes] [--no-backup]                drop and recreate the schema
    ekko db backup                                     a backup, nothing else

While `ekko run` holds the database, --check-only, --validate, migrate and
`db backup` are sent to it over NATS (`ekko.admin.migration.*`, `ekko.admin.backup`);
--restore-backup and `db reset` replace the whole database and need the service
stopped.

The integrity result (of a migration or --validate) is stored in the database, where
`ekko.database.health` and `ekko.metrics` show it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from nats.js import JetStreamContext

from schema.admin import MigrateRequest
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
    open_database,
    operator,
    optional_nats_connection,
)
from service.config import Settings
from service.migration import backups, core
from service.migration.render import print_report, print_validation, progress_for
from service.migration.report import BackupInfo, MigrationReport, ValidationResult
from service.model.errors import DatabaseLocked
from service.store.integrity import record_integrity
from service.sync.buckets import Progress
from service.usecases.audit import audited

T = TypeVar("T")
log = logging.getLogger("ekko.migrate")


def add_commands(subparsers: Any) -> None:
    """Add `migrate` and `db` to an argparse subparsers object; each sets func(args, settings) -> int."""
    migrate = add_command(
        subparsers, "migrate", summary="migrate the legacy KV buckets into DuckDB", description=__doc__ or ""
    )
    add_migrate_arguments(migrate)
    migrate.set_defaults(func=run_migrate)
    db = add_command(
        subparsers,
        "db",
        summary="database maintenance: backup, reset",
        description="Back up the database (and the KV buckets), or drop and recreate its schema.",
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    reset = add_command(
        db_commands,
        "reset",
        summary="drop and recreate the schema (CAUTION: destroys all data)",
        description="Drop every table of DUCKDB_PATH and recreate the schema, after a backup under"
        " <data dir>/backups unless --no-backup. The service must be stopped; asks for confirmation"
        " on a terminal unless --yes.",
    )
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.add_argument("--no-backup", action="store_true", help="do not back up first")
    add_json_flag(reset)
    reset.set_defaults(func=run_reset)
    backup = add_command(
        db_commands,
        "backup",
        summary="back up DuckDB and the KV buckets under <data dir>/backups",
        description="Write a backup directory under <data dir>/backups: DuckDB exported as Parquet, each KV"
        " bucket as NDJSON, and a manifest with checksums. While `ekko run` holds the database the running"
        " service writes it (ekko.admin.backup).",
    )
    add_json_flag(backup)
    backup.set_defaults(func=run_backup)


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `ekko migrate` (also `scripts/run_migration.py`)."""
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check-only", action="store_true", help="report what is there and what would happen; change nothing"
    )
    action.add_argument("--validate", action="store_true", help="only run the integrity validation")
    action.add_argument("--restore-backup", metavar="PATH", type=Path, help="restore DuckDB from a backup directory")
    parser.add_argument("--restore-kv", action="store_true", help="with --restore-backup: restore the KV buckets too")
    parser.add_argument("--no-backup", action="store_true", help="do not back up before migrating")
    parser.add_argument(
        "--force", action="store_true", help="upsert into a non-empty database (KV wins; nothing is deleted)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="list every failure and every table")
    add_json_flag(parser)


# -- commands --------------------------------------------------------------------
async def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    if args.restore_kv and args.restore_backup is None:
        print("ekko migrate: --restore-kv goes with --restore-backup PATH", file=sys.stderr)
        return EXIT_FAILED
    return await _migrate(args, settings)


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    if args.restore_backup is not None:
        return await _restore(args, settings)
    try:
        db = open_database(settings, read_only=args.check_only or args.validate)
    except DatabaseLocked:
        result = await _migrate_via_service(args, settings)
    else:
        try:
            async with nats_connection(settings) as nc:
                with progress_for(sys.stderr, quiet=args.json) as progress:
                    result = await _migrate_step(args, settings, db, nc.jetstream(), progress)
        finally:
            db.close()
        if getattr(db, "exists", True):  # a database that has a schema: not one --validate imagined empty
            await _remember_integrity(settings, result)
    _log_outcome(result)
    if isinstance(result, ValidationResult):
        emit(result, args.json, lambda: print_validation(result, verbose=True))
    else:
        emit(result, args.json, lambda: print_report(result, verbose=args.verbose))
    return EXIT_OK if result.ok else EXIT_FAILED


async def _migrate_step(
    args: argparse.Namespace, settings: Settings, db: Any, js: JetStreamContext, progress: Progress
) -> MigrationReport | ValidationResult:
    if args.validate:
        return await core.validate(db, js, progress=progress)
    if args.check_only:
        report = await core.check(db, js, progress=progress)
        if not db.exists:
            report.schema_version = 0
            report.message += f" ({settings.duckdb_path} does not exist yet)"
        return report
    backups_dir = None if args.no_backup else settings.data_dir / "backups"
    async with audited("cli.migrate", who=operator(), force=args.force, backup=backups_dir is not None):
        report = await core.migrate(db, js, force=args.force, backups_dir=backups_dir, progress=progress)
    if report.backup is not None:
        backups.prune_backups(settings.data_dir / "backups", settings.backup_keep)
    return report


async def _migrate_via_service(args: argparse.Namespace, settings: Settings) -> MigrationReport | ValidationResult:
    if args.validate:
        return await _via_service(settings, "admin.migration.validate", b"", ValidationResult)
    if args.check_only:
        return await _via_service(settings, "admin.migration.check", b"", MigrationReport)
    body = encode(MigrateRequest(force=args.force, backup=not args.no_backup))
    return await _via_service(settings, "admin.migration.migrate", body, MigrationReport)


def _log_outcome(result: MigrationReport | ValidationResult) -> None:
    """One INFO line for the log (the table or JSON goes to stdout)."""
    if isinstance(result, ValidationResult):
        log.info("integrity check %s", "passed" if result.ok else "FAILED", extra={"ok": result.ok})
    else:
        extra = {"mode": result.mode, "status": result.status, "ok": result.ok, "seconds": round(result.seconds, 3)}
        log.info("migration %s: %s", result.status, result.message, extra=extra)


async def _remember_integrity(settings: Settings, result: MigrationReport | ValidationResult) -> None:
    """Store the integrity result in the database, for the service's health once it starts (the
    service records its own when it runs the check)."""
    validation = result if isinstance(result, ValidationResult) else result.validation
    if validation is None:
        return
    data = encode(validation)
    try:
        async with database(settings) as db:
            await db.write(lambda uow: record_integrity(uow.cursor, validation.checked_at, validation.ok, data))
    except DatabaseLocked:
        print("ekko migrate: the service started meanwhile; its health will not show this check", file=sys.stderr)


async def _via_service(settings: Settings, subject: str, body: bytes, result_type: type[T]) -> T:
    return msgspec.json.decode(await ask_service(settings, subject, body), type=result_type)


async def _restore(args: argparse.Namespace, settings: Settings) -> int:
    restoring = audited("cli.db.restore", who=operator(), path=str(args.restore_backup), kv=args.restore_kv)
    async with restoring, database(settings) as db:
        if args.restore_kv:
            async with nats_connection(settings) as nc:
                result = await backups.restore(db, nc.jetstream(), args.restore_backup, restore_kv=True)
        else:
            result = await backups.restore(db, None, args.restore_backup)
    emit(result, args.json, lambda: print(f"restored {result.path}: tables {result.tables}, buckets {result.buckets}"))
    return EXIT_OK


async def run_reset(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes and not _confirmed(settings.duckdb_path):
        return EXIT_FAILED
    return await _reset(args, settings)


async def _reset(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, optional_nats_connection(settings) as nc:
        js = nc.jetstream() if nc is not None else None
        backups_dir = None if args.no_backup else settings.data_dir / "backups"
        async with audited("cli.db.reset", who=operator(), backup=backups_dir is not None):
            result = await backups.reset(db, js, backups_dir=backups_dir)
    where = f"; backup in {result.backup.path}" if result.backup else ""
    emit(result, args.json, lambda: print(f"database reset to schema version {result.schema_version}{where}"))
    return EXIT_OK


async def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    return await _backup(args, settings)


async def _backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        db = open_database(settings)
    except DatabaseLocked:
        info = await _via_service(settings, "admin.backup", b"", BackupInfo)
    else:
        try:
            async with optional_nats_connection(settings) as nc:
                js = nc.jetstream() if nc is not None else None
                async with audited("cli.db.backup", who=operator()) as fields:
                    info = await backups.backup(db, js, settings.data_dir / "backups", keep=settings.backup_keep)
                    fields["path"] = info.path
        finally:
            db.close()
    emit(info, args.json, lambda: print(f"backup in {info.path}: tables {info.tables}, buckets {info.buckets}"))
    return EXIT_OK


def _confirmed(path: Path) -> bool:
    if not sys.stdin.isatty():
        print("ekko db reset: refusing without --yes (no terminal to confirm on)", file=sys.stderr)
        return False
    answer = input(f"This drops every table of {path} (backed up first unless --no-backup). Type 'reset' to go on: ")
    if answer.strip() != "reset":
        print("ekko db reset: not confirmed, nothing changed", file=sys.stderr)
        return False
    return True
