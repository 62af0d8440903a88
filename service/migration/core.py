"""check / migrate / validate / auto_migrate: the migration as functions of an open
`Database` and a JetStream context, for the CLI and for the running service alike.

All DuckDB work of one call runs in one `db.read` (check, validate) or one
`db.write` (migrate: plan, backup, write and integrity check in one
transaction, so a crash leaves DuckDB as it was).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError

from service.config import Settings
from service.migration.backups import backup_ahead, write_backup
from service.migration.plan import (
    EntityPlan,
    drop_stages,
    integrity,
    plan_all,
    write,
)
from service.migration.report import (
    BackupInfo,
    BucketReport,
    MigrationReport,
    Mode,
    Status,
    ValidationResult,
)
from service.model.columns import utc_now
from service.model.registry import ENTITY_ORDER
from service.store.balances import rebuild as rebuild_balances
from service.store.database import Cursor, Database, in_one_snapshot
from service.store.search import rebuild as rebuild_search
from service.store.sql import count_rows, one_row, quote, schema_version, table_counts
from service.sync.buckets import Progress, Snapshot, read_snapshot
from service.sync.check import republish

log = logging.getLogger(__name__)


async def check(
    db: Database, js: JetStreamContext, *, snapshot: Snapshot | None = None, progress: Progress | None = None
) -> MigrationReport:
    """What is in each bucket and table, and what `migrate` would do. Changes nothing."""
    started, clock = utc_now(), time.perf_counter()
    if snapshot is None:
        snapshot = await read_snapshot(js, progress)

    def work(cur: Cursor) -> MigrationReport:
        plans = plan_all(cur, snapshot, started, progress)
        try:
            report = _report("check", plans, snapshot, cur, started, status="checked")
        finally:
            drop_stages(cur, plans)
        new, changed = _totals(plans)
        failed = len(report.failures)
        if not report.would_change:
            report.message = "nothing to migrate" if snapshot.has_data else "no legacy data in the KV buckets"
        elif report.database_empty:
            report.message = f"`ekko migrate` would insert {new} records"
        else:
            report.message = (
                f"DuckDB already holds data: `ekko migrate` would refuse; "
                f"`ekko migrate --force` would insert {new} and update {changed} records"
            )
        if failed:
            report.message += f"; {failed} records would fail"
        report.ok = failed == 0
        return report

    report = await db.read(in_one_snapshot(work))
    report.seconds = time.perf_counter() - clock
    return report


async def migrate(
    db: Database,
    js: JetStreamContext,
    *,
    force: bool = False,
    backups_dir: Path | None = None,
    snapshot: Snapshot | None = None,
    progress: Progress | None = None,
    relay_paused: Callable[[], contextlib.AbstractAsyncContextManager[None]] = contextlib.nullcontext,
) -> MigrationReport:
    """Migrate every entity bucket into DuckDB, then check integrity.

    Does nothing when DuckDB already holds every KV record ("up_to_date"). Refuses
    when DuckDB holds data and the buckets differ, unless `force`: then new keys are
    inserted and changed ones overwritten (KV wins for the keys it holds; nothing is
    deleted). `backups_dir`: back up DuckDB and the buckets there before writing.

    Then the KV values of migrated records that carried a secret (users' legacy
    `hashed_password`) are rewritten from DuckDB, so no password hash stays in KV
    (the backup keeps the legacy values). `relay_paused`: the running service's
    Relay.paused, so no relay batch lands between reading DuckDB and those puts.
    """
    started, clock = utc_now(), time.perf_counter()
    if snapshot is None:
        snapshot = await read_snapshot(js, progress)

    def work(cur: Cursor) -> MigrationReport:
        empty = _is_empty(cur)
        with contextlib.ExitStack() as stack:
            backup: BackupInfo | None = None
            keep_backup_ahead = None
            if backups_dir is not None and empty and snapshot.has_data:  # a first migration: it will write
                keep_backup_ahead = stack.enter_context(backup_ahead(cur, snapshot, backups_dir))
            plans = plan_all(cur, snapshot, started, progress)
            stack.callback(drop_stages, cur, plans)
            unpublished = count_rows(cur, "outbox")
            status, message = _decide(plans, snapshot, empty=empty, force=force, unpublished=unpublished)
            if status == "migrated":
                if keep_backup_ahead is not None:
                    backup = keep_backup_ahead()
                elif backups_dir is not None:
                    backup = write_backup(cur, snapshot, backups_dir)
                for plan in plans.values():
                    clock_write = time.perf_counter()
                    write(cur, plan, started, update=force)
                    plan.seconds += time.perf_counter() - clock_write
                rebuild_balances(cur)  # the rows came in bulk: derive roll-ups and latest rows from them
                rebuild_search(cur)
            report = _report("migrate", plans, snapshot, cur, started, status=status)
            report.validation = _validate(cur, plans)
            with_secrets.update(
                {name: [row["id"] for row in plan.rows] for name, plan in plans.items() if plan.spec.secret_columns}
            )
        report.message, report.backup, report.force, report.database_empty = message, backup, force, empty
        if failed := len(report.failures):
            report.message += f"; {failed} records could not be migrated"
        report.ok = status != "refused" and failed == 0 and report.validation.ok
        return report

    with_secrets: dict[str, list[str]] = {}
    report = await db.write(lambda uow: work(uow.cursor), alone=True)
    if report.status == "migrated":
        async with relay_paused():
            for name, ids in with_secrets.items():
                report.kv_rewritten[name] = await _rewrite_kv(db, js, name, ids)
    report.seconds = time.perf_counter() - clock
    return report


async def validate(
    db: Database, js: JetStreamContext, *, snapshot: Snapshot | None = None, progress: Progress | None = None
) -> ValidationResult:
    """Integrity of DuckDB against the buckets: every migratable KV record has an equal row
    (same mapping as the migration), and no foreign key points at nothing."""
    clock = time.perf_counter()
    if snapshot is None:
        snapshot = await read_snapshot(js, progress)
    now = utc_now()

    def work(cur: Cursor) -> ValidationResult:
        plans = plan_all(cur, snapshot, now, progress)
        try:
            return _validate(cur, plans)
        finally:
            drop_stages(cur, plans)

    result = await db.read(in_one_snapshot(work))
    result.seconds = time.perf_counter() - clock
    return result


async def auto_migrate(settings: Settings, db: Database, nc: NATS) -> ValidationResult:
    """MIGRATION_MODE: back up, migrate and validate before serving; log the summary.
    Idempotent: on a migrated database it finds nothing to do and changes nothing.
    Never forces: when DuckDB holds other data it logs why it refused and serves anyway.
    Returns the integrity result (what `ekko.database.health` shows)."""
    report = await migrate(db, nc.jetstream(), backups_dir=settings.data_dir / "backups")
    log_report(report)
    assert report.validation is not None
    return report.validation


def log_report(report: MigrationReport) -> None:
    """The summary as log lines (the CLI prints a table instead)."""
    for b in report.buckets:
        if not b.present:
            log.info("bucket %s: missing", b.bucket)
            continue
        log.info(
            "bucket %s: read %d, migrated %d, unchanged %d, skipped as deleted %d, failed %d (%.2f s)",
            b.bucket,
            b.keys,
            b.migrated,
            b.unchanged,
            b.skipped_deleted,
            b.failed,
            b.seconds,
        )
        for failure in b.failures[:10]:
            log.warning("not migrated: %s/%s: %s", failure.bucket, failure.key, failure.reason)
        if b.failed > 10:
            log.warning("not migrated: %d more in %s (`--check-only --json` lists all)", b.failed - 10, b.bucket)
    if report.backup is not None:
        log.info("backup written to %s", report.backup.path)
    level = logging.INFO if report.status != "refused" else logging.WARNING
    log.log(level, "migration %s in %.2f s: %s", report.status, report.seconds, report.message)
    if report.validation is not None and not report.validation.ok:
        log.warning("integrity check failed: %s", _problems(report.validation))


# -- helpers -----------------------------------------------------------------
def _decide(
    plans: dict[str, EntityPlan], snapshot: Snapshot, *, empty: bool, force: bool, unpublished: int
) -> tuple[Status, str]:
    new, changed = _totals(plans)
    if not new and not changed:
        if not snapshot.has_data:
            return "up_to_date", "no legacy data in the KV buckets"
        return "up_to_date", "nothing to migrate: DuckDB holds every KV record"
    if not empty and not force:
        return "refused", (
            f"DuckDB already holds data and the KV buckets differ ({new} new, {changed} changed records):"
            " rerun with --force to upsert them (KV wins for the keys it holds; nothing is deleted)"
        )
    if not empty and unpublished:
        # KV is behind DuckDB by these changes: "KV wins" would undo them, and the relay
        # would then publish them over the forced values.
        return "refused", (
            f"{unpublished} changes in the outbox have not reached KV yet: start the service so the relay"
            " publishes them (or run `ekko sync repair`), then rerun"
        )
    return "migrated", f"migrated {new} new and {changed} changed records"


async def _rewrite_kv(db: Database, js: JetStreamContext, name: str, ids: list[str]) -> int:
    """Put DuckDB's values (no secrets) under the migrated keys. The ids came from the bucket;
    a bucket that is missing (never there, or deleted since) holds no legacy value to replace."""
    if not ids:
        return 0
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        log.warning("KV bucket %s is gone: no legacy values left to rewrite", name)
        return 0
    return await republish(db, kv, name, ids)


def _totals(plans: dict[str, EntityPlan]) -> tuple[int, int]:
    return sum(p.new for p in plans.values()), sum(p.changed for p in plans.values())


def _is_empty(cur: Cursor) -> bool:
    return all(one_row(cur, f"SELECT NOT EXISTS (SELECT 1 FROM {quote(name)})")[0] for name in ENTITY_ORDER)


def _validate(cur: Cursor, plans: dict[str, EntityPlan]) -> ValidationResult:
    clock = time.perf_counter()
    checks = integrity(cur, plans)
    ok = all(c.missing == c.different == c.orphans == 0 for c in checks)
    return ValidationResult(ok=ok, checked_at=utc_now(), seconds=time.perf_counter() - clock, tables=checks)


def _problems(result: ValidationResult) -> str:
    parts = []
    for c in result.tables:
        for label, count, sample in (
            ("missing", c.missing, c.sample_missing),
            ("different", c.different, c.sample_different),
            ("orphans", c.orphans, c.sample_orphans),
        ):
            if count:
                parts.append(f"{c.table}: {count} {label} (e.g. {', '.join(sample[:3])})")
    return "; ".join(parts)


def _report(
    mode: Mode, plans: dict[str, EntityPlan], snapshot: Snapshot, cur: Cursor, started: datetime, *, status: Status
) -> MigrationReport:
    """Per-bucket accounting. A check counts what `--force` would write; a refused run
    counts what it did not write as pending."""
    buckets = []
    for name, plan in plans.items():
        snap = plan.bucket
        written = status in ("checked", "migrated")
        inserted, updated = (plan.new, plan.changed) if written else (0, 0)
        pending = 0 if written else plan.new + plan.changed
        buckets.append(
            BucketReport(
                bucket=name,
                present=snap.present,
                keys=snap.keys,
                messages=snap.messages,
                bytes=snap.bytes,
                migrated=inserted + updated,
                inserted=inserted,
                updated=updated,
                pending=pending,
                unchanged=plan.unchanged,
                skipped_deleted=len(snap.deleted),
                failed=len(plan.failures),
                seconds=round(snap.seconds + plan.seconds, 3),
                failures=plan.failures,
            )
        )
    tables = table_counts(cur)
    return MigrationReport(
        mode=mode,
        status=status,
        ok=True,
        message="",
        started_at=started,
        seconds=0.0,
        schema_version=schema_version(cur),
        database_empty=not any(tables.values()),
        would_change=any(p.new or p.changed for p in plans.values()),
        tables=tables,
        buckets=buckets,
        ignored_buckets=snapshot.ignored,
    )
