"""Request bodies of the admin subjects (`ekko.admin.*`)."""

from __future__ import annotations

from msgspec import Struct


class MigrateRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """`ekko.admin.migration.migrate`: the flags of `ekko migrate`."""

    force: bool = False
    """Upsert into a non-empty database (KV wins). The running service refuses it (409): KV
    trails DuckDB while it serves; `ekko migrate --force` with the service stopped does it."""
    backup: bool = True
    """Back up DuckDB and the buckets under <data dir>/backups first (`--no-backup` sends false)."""
