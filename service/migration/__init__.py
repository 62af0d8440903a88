"""Legacy JetStream KV -> DuckDB migration: check, migrate, validate, back up, restore, reset.

Each function takes an open `service.store.database.Database` and a nats-py JetStream
context, so the CLI (`service.cli.migrate`) and the running service call the
same code. Layout: `source` reads buckets, `legacy` maps one value, `plan`
stages and compares rows, `core` runs check/migrate/validate, `backups` writes
and restores backups, `report` holds the result Structs.
"""

from service.migration.backups import backup, reset, restore
from service.migration.core import auto_migrate, check, migrate, validate
from service.migration.report import MigrationError, MigrationReport, ValidationResult
from service.sync.buckets import Snapshot, read_snapshot

__all__ = [
    "MigrationError",
    "MigrationReport",
    "Snapshot",
    "ValidationResult",
    "auto_migrate",
    "backup",
    "check",
    "migrate",
    "read_snapshot",
    "reset",
    "restore",
    "validate",
]
