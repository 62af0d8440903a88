"""Backups made before migrating or resetting, and restoring them.

A backup is a directory `<backups_dir>/<UTC timestamp>/` holding
- `duckdb/`: `EXPORT DATABASE ... (FORMAT parquet)`, one consistent snapshot
  (it runs in a transaction; `IMPORT DATABASE` gives the same rows back);
- `kv/<bucket>.ndjson`: the latest value of every live key, one
  `{"key": ..., "value": <base64>}` per line (values may be any bytes);
- `manifest.json`: row and key counts, bucket history, versions and the sha256
  of every file, checked before anything is restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import duckdb
import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, NotFoundError

from service.migration.report import BackupInfo, MigrationError
from service.model.columns import utc_now
from service.model.errors import InsufficientStorage
from service.model.registry import ENTITY_ORDER
from service.store.balances import rebuild as rebuild_balances
from service.store.database import Cursor, Database, in_one_snapshot
from service.store.ddl import LATEST_VERSION, apply_pending, drop_all
from service.store.search import rebuild as rebuild_search
from service.store.sql import schema_version, table_counts
from service.sync.buckets import EXTRA_BUCKETS, Snapshot, read_snapshot
from service.sync.jetstream import pipelined

log = logging.getLogger(__name__)

FORMAT = 1
# Free disk a backup needs: its estimated size (DuckDB file + KV values) times this, plus SLACK.
SPACE_MARGIN = 1.5
SPACE_SLACK = 64 * 1024 * 1024
# Keys and raw values (base64) only, no decimals: this writes what schema.common.encode would, faster.
_DUMP = msgspec.json.Encoder()


class BucketDump(msgspec.Struct):
    keys: int
    history: int
    file: str


class BackupManifest(msgspec.Struct, kw_only=True):
    format: int
    created_at: datetime
    schema_version: int
    versions: dict[str, str]  # ekko, duckdb, nats-py
    tables: dict[str, int]
    buckets: dict[str, BucketDump]  # the buckets that existed (none when KV was not dumped)
    kv_dumped: bool
    files: dict[str, str]  # path relative to the backup -> sha256


class KvEntry(msgspec.Struct):
    key: str
    value: bytes


class RestoreResult(msgspec.Struct, kw_only=True):
    path: str
    schema_version: int
    tables: dict[str, int]
    buckets: dict[str, int]  # keys put back per bucket (empty unless KV was restored)


class ResetResult(msgspec.Struct, kw_only=True):
    schema_version: int
    backup: BackupInfo | None


async def backup(
    db: Database,
    js: JetStreamContext | None,
    backups_dir: Path,
    *,
    snapshot: Snapshot | None = None,
    keep: int | None = None,
) -> BackupInfo:
    """Back up DuckDB and (when `js` or `snapshot` is given) the KV buckets; refused (507) when
    the disk lacks room. `keep`: then delete all but the newest `keep` backups."""
    if snapshot is None and js is not None:
        snapshot = await read_snapshot(js)
    ensure_free_space(backups_dir, estimated_size(db.path, snapshot))
    # One transaction: the export and the manifest's counts see the same state even while
    # the running service commits writes (ekko.admin.backup).
    info = await db.read(in_one_snapshot(lambda cur: write_backup(cur, snapshot, backups_dir)))
    if keep is not None:
        prune_backups(backups_dir, keep)
    return info


def estimated_size(db_path: Path, snapshot: Snapshot | None) -> int:
    """An upper estimate of a backup's bytes: the DuckDB file and its WAL (the parquet export
    is smaller) plus every KV value."""
    size = sum(p.stat().st_size for p in (db_path, db_path.with_name(db_path.name + ".wal")) if p.exists())
    if snapshot is not None:
        size += sum(len(k) + len(v) for b in snapshot.buckets.values() for k, v in b.values.items())
    return size


def ensure_free_space(backups_dir: Path, needed: int) -> None:
    """InsufficientStorage (507) unless the disk holding `backups_dir` has room for `needed`
    bytes with the margin: a backup that fills the disk would take DuckDB's writes down too."""
    place = backups_dir
    while not place.exists() and place != place.parent:
        place = place.parent
    free = shutil.disk_usage(place).free
    wanted = int(needed * SPACE_MARGIN) + SPACE_SLACK
    if free < wanted:
        raise InsufficientStorage(
            f"not enough free disk for a backup in {backups_dir}: {free // 2**20} MiB free,"
            f" {wanted // 2**20} MiB wanted (estimated size {needed // 2**20} MiB with margin)"
        )


def prune_backups(backups_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups (ekko's own: directories with a manifest);
    their names are UTC timestamps, so name order is age order. Returns the deleted ones."""
    if not backups_dir.is_dir():
        return []
    ours = sorted(p for p in backups_dir.iterdir() if p.is_dir() and (p / "manifest.json").is_file())
    old = ours[: max(len(ours) - keep, 0)]
    for path in old:
        shutil.rmtree(path)
        log.info("deleted old backup %s (EKKO_BACKUP_KEEP=%d)", path, keep)
    return old


def write_backup(cur: Cursor, snapshot: Snapshot | None, backups_dir: Path) -> BackupInfo:
    """Write a backup directory from this cursor's view of DuckDB and a KV snapshot."""
    clock = time.perf_counter()
    created = utc_now()
    backups_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    backups_dir.chmod(0o700)  # backups hold every record (and legacy hashes): owner only
    path = backups_dir / created.strftime("%Y%m%dT%H%M%S.%fZ")
    path.mkdir(mode=0o700)
    path.chmod(0o700)  # the KV dump holds the legacy password hashes: owner only
    cur.execute(f"EXPORT DATABASE {_literal(path / 'duckdb')} (FORMAT parquet)")
    buckets: dict[str, BucketDump] = {}
    if snapshot is not None:
        (path / "kv").mkdir()
        for name, snap in snapshot.buckets.items():
            if snap.present:
                file = f"kv/{name}.ndjson"
                entries = [KvEntry(key, value) for key, value in snap.values.items()]
                (path / file).write_bytes(_DUMP.encode_lines(entries))
                buckets[name] = BucketDump(len(entries), snap.history, file)
    tables = table_counts(cur)
    manifest = BackupManifest(
        format=FORMAT,
        created_at=created,
        schema_version=schema_version(cur),
        versions=_versions(),
        tables=tables,
        buckets=buckets,
        kv_dumped=snapshot is not None,
        files=_checksums(path),
    )
    (path / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2))
    seconds = time.perf_counter() - clock
    log.info("backup written to %s in %.2f s", path, seconds, extra={"backup": str(path), "tables": tables})
    return BackupInfo(
        path=str(path),
        created_at=created,
        tables=tables,
        buckets={name: dump.keys for name, dump in buckets.items()},
        seconds=seconds,
    )


@contextlib.contextmanager
def backup_ahead(cur: Cursor, snapshot: Snapshot, backups_dir: Path) -> Iterator[Callable[[], BackupInfo]]:
    """Start a backup on another cursor now; the body calls the yielded function to wait for it
    and keep it, else it is deleted on exit. Meant for the writer thread before it writes: no
    other write can commit meanwhile, so the backup holds exactly the state the caller starts
    from, while the export, file writes and hashing (which leave the GIL) overlap its work."""
    kept = False

    def in_thread() -> BackupInfo:
        other = cur.cursor()
        try:
            return write_backup(other, snapshot, backups_dir)
        finally:
            other.close()

    def keep() -> BackupInfo:
        nonlocal kept
        kept = True
        return future.result()

    with ThreadPoolExecutor(1, thread_name_prefix="migration-backup") as pool:
        future = pool.submit(in_thread)
        try:
            yield keep
        finally:
            if not kept and (error := future.exception()) is None:
                shutil.rmtree(future.result().path)
            elif not kept:
                log.warning("a backup nobody needed failed: %s", error)


def read_manifest(path: Path) -> BackupManifest:
    """The manifest of a backup directory, after checking every file against its checksum."""
    try:
        manifest = msgspec.json.decode((path / "manifest.json").read_bytes(), type=BackupManifest)
    except FileNotFoundError:
        raise MigrationError(f"{path} is not a backup made by ekko (no manifest.json)") from None
    except msgspec.DecodeError as exc:
        raise MigrationError(f"{path}/manifest.json is unreadable: {exc}") from None
    if manifest.format != FORMAT:
        raise MigrationError(f"{path}: backup format {manifest.format} is not supported (expected {FORMAT})")
    actual = _checksums(path)
    damaged = sorted(name for name, digest in manifest.files.items() if actual.get(name) != digest)
    if damaged:
        raise MigrationError(f"{path}: files missing or changed since the backup: {', '.join(damaged)}")
    if manifest.schema_version > LATEST_VERSION:
        raise MigrationError(
            f"{path}: schema version {manifest.schema_version} is newer than this ekko's ({LATEST_VERSION})"
        )
    return manifest


async def restore(db: Database, js: JetStreamContext | None, path: Path, *, restore_kv: bool = False) -> RestoreResult:
    """Replace DuckDB's content with the backup's (one transaction); with `restore_kv`,
    also make each dumped bucket hold exactly the backup's keys and values."""
    manifest = read_manifest(path)
    if restore_kv and js is None:
        raise MigrationError(f"{path}: cannot restore the KV buckets without a NATS connection")
    if restore_kv and not manifest.kv_dumped:
        raise MigrationError(f"{path}: the backup holds no KV dump to restore")
    source = path / "duckdb"

    def work(cur: Cursor) -> tuple[int, dict[str, int]]:
        drop_all(cur)
        cur.execute(f"IMPORT DATABASE {_literal(source)}")
        counts = table_counts(cur)
        if wrong := {t: (n, counts.get(t)) for t, n in manifest.tables.items() if counts.get(t) != n}:
            raise MigrationError(f"{path}: restored row counts differ from the manifest (expected, got): {wrong}")
        version = apply_pending(cur)
        rebuild_balances(cur)  # derived from the restored rows, whatever version made the backup
        rebuild_search(cur)
        return version, counts

    version, tables = await db.write(lambda uow: work(uow.cursor), alone=True)
    db.schema_version = version
    restored: dict[str, int] = {}
    if restore_kv:
        assert js is not None
        for name, dump in manifest.buckets.items():
            restored[name] = await _restore_bucket(js, name, dump, path)
        for name in (*ENTITY_ORDER, *EXTRA_BUCKETS):
            if name not in manifest.buckets and await _empty_bucket(js, name):
                restored[name] = 0  # absent at backup time, created since: emptied
    log.info("restored %s (tables %s, buckets %s)", path, tables, restored)
    return RestoreResult(path=str(path), schema_version=version, tables=tables, buckets=restored)


async def reset(db: Database, js: JetStreamContext | None, *, backups_dir: Path | None) -> ResetResult:
    """Drop and recreate the schema (one transaction), after a backup unless `backups_dir` is None."""
    info = await backup(db, js, backups_dir) if backups_dir is not None else None

    def work(cur: Cursor) -> int:
        drop_all(cur)
        return apply_pending(cur)

    version = await db.write(lambda uow: work(uow.cursor), alone=True)
    db.schema_version = version
    log.warning("database reset to an empty schema (version %d)", version)
    return ResetResult(schema_version=version, backup=info)


async def _restore_bucket(js: JetStreamContext, name: str, dump: BucketDump, path: Path) -> int:
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        kv = await js.create_key_value(KeyValueConfig(bucket=name, history=dump.history))
    # Purging the stream drops every key and its history: the bucket then holds exactly the dump.
    await js.purge_stream(f"KV_{name}")
    decoder = msgspec.json.Decoder(KvEntry)
    entries = [decoder.decode(line) for line in (path / dump.file).read_bytes().splitlines() if line]
    await pipelined(lambda e: kv.put(e.key, e.value), entries)
    return len(entries)


async def _empty_bucket(js: JetStreamContext, name: str) -> bool:
    """Purge the bucket if it exists; whether it did."""
    try:
        await js.purge_stream(f"KV_{name}")
    except NotFoundError:
        return False
    return True


def _literal(path: Path) -> str:
    """A path as an SQL string literal (EXPORT/IMPORT DATABASE take no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def _checksums(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _versions() -> dict[str, str]:
    versions = {"duckdb": duckdb.__version__}
    for package in ("ekko", "nats-py"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions
