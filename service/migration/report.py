"""What the migration tools report, as msgspec Structs (the CLI prints them as a table
or as JSON; `ekko.database.health` shows the last `ValidationResult`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class MigrationError(Exception):
    """The migration could not run (as opposed to records that could not be migrated,
    which are listed in the report). The message says what to do."""


class Failure(msgspec.Struct):
    bucket: str
    key: str
    reason: str


class BucketReport(msgspec.Struct, kw_only=True):
    """One bucket. Every key read is accounted for:
    keys == migrated + unchanged + pending + skipped_deleted + failed (migrated = inserted + updated).
    In a check the counts are what `ekko migrate --force` would do; `pending` counts the new
    or changed records a refused run did not write."""

    bucket: str
    present: bool
    keys: int = 0  # keys read: live ones plus those whose latest revision is a delete/purge marker
    messages: int = 0  # stream messages, history included
    bytes: int = 0
    migrated: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    pending: int = 0
    skipped_deleted: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[Failure] = []


class TableCheck(msgspec.Struct, kw_only=True):
    """One table against its bucket. `missing`: migratable KV records with no row;
    `different`: rows whose content differs from the KV record mapped the same way;
    `orphans`: rows whose foreign key points at no row."""

    table: str
    kv_keys: int
    migratable: int
    db_rows: int
    missing: int = 0
    different: int = 0
    orphans: int = 0
    sample_missing: list[str] = []
    sample_different: list[str] = []
    sample_orphans: list[str] = []


class ValidationResult(msgspec.Struct, kw_only=True):
    ok: bool
    checked_at: datetime
    seconds: float
    tables: list[TableCheck]


class BackupInfo(msgspec.Struct, kw_only=True):
    path: str
    created_at: datetime
    tables: dict[str, int]
    buckets: dict[str, int]  # keys per dumped bucket
    seconds: float


Mode = Literal["check", "migrate", "validate"]
Status = Literal["checked", "migrated", "up_to_date", "refused", "validated"]


class MigrationReport(msgspec.Struct, kw_only=True):
    mode: Mode
    status: Status
    ok: bool  # nothing failed (or would fail), nothing refused, validation (if run) passed
    message: str
    started_at: datetime
    seconds: float
    force: bool = False
    schema_version: int = 0
    database_empty: bool = True
    would_change: bool = False  # a migration would insert or update rows
    tables: dict[str, int] = {}  # rows per table at the end
    buckets: list[BucketReport] = []
    ignored_buckets: list[str] = []  # legacy buckets present but out of scope (nodes, settings)
    backup: BackupInfo | None = None
    validation: ValidationResult | None = None
    kv_rewritten: dict[str, int] = {}  # keys rewritten from DuckDB so no secret stays in KV (users)

    @property
    def failures(self) -> list[Failure]:
        return [f for b in self.buckets for f in b.failures]
