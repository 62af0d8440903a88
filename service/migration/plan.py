"""From a KV snapshot to staged rows, checked against DuckDB; then writing and checking them.

Per entity, parents first (ENTITY_ORDER): map every live value (`legacy.map_value`),
drop those whose foreign key points at no row (neither in DuckDB nor migrated in
this run), those duplicating a unique key (the row already stored, else the
oldest record, wins) and new users without a password hash. What is left is
loaded into a temp table (NDJSON + `read_json`: one bulk load, not a statement
per row; `python -m bench.migration_bench` measures it against that) and
compared with the table in SQL: new ids, ids whose content differs, unchanged
ids. Writing is two statements per table; integrity checks compare the same
staged rows again after writing.

Table and column names come from the registry only; values are bound or read
from the NDJSON file.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schema.common import encode
from service.migration.legacy import FILLABLE, Mapped, Rejected, map_value
from service.migration.report import Failure, TableCheck
from service.model.columns import Kind
from service.model.registry import ENTITIES, ENTITY_ORDER, EntitySpec
from service.store.sql import Cursor, count_rows, one_row, quote
from service.store.tables import key_sql
from service.sync.buckets import BucketSnapshot, NoProgress, Progress, Snapshot

log = logging.getLogger(__name__)

SAMPLE = 10


@dataclass
class EntityPlan:
    spec: EntitySpec
    bucket: BucketSnapshot
    rows: list[dict[str, Any]] = field(default_factory=list)  # what passed every check, staged
    failures: list[Failure] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    sample_new: list[str] = field(default_factory=list)
    sample_changed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def stage(self) -> str:
        return quote(f"_migration_stage_{self.spec.name}")

    @property
    def unchanged(self) -> int:
        return len(self.rows) - self.new - self.changed


def plan_all(cur: Cursor, snapshot: Snapshot, now: datetime, progress: Progress | None = None) -> dict[str, EntityPlan]:
    """Map, check, stage and classify every entity bucket. Changes nothing but temp tables."""
    progress = progress or NoProgress()
    known: dict[str, set[str]] = {}  # ids each table will hold after migrating
    failed: dict[str, set[str]] = {}
    plans = {}
    for name in ENTITY_ORDER:
        started = time.perf_counter()
        spec = ENTITIES[name]
        plan = EntityPlan(spec, snapshot.buckets[name])
        progress.start(f"check {name}", len(plan.bucket.values))
        mapped = _map_bucket(plan, now)
        stored = {row[0] for row in cur.execute(f"SELECT id FROM {quote(name)}").fetchall()}
        _check_references(plan, mapped, known, failed)
        _check_secrets(plan, mapped, stored)  # first: a record that cannot be kept must not win a unique key
        _check_unique(cur, plan, mapped, stored)
        known[name] = stored | mapped.keys()
        failed[name] = {f.key for f in plan.failures}
        plan.rows = [m.row for m in mapped.values()]
        _stage(cur, plan)
        classify(cur, plan)
        progress.advance(f"check {name}", len(plan.bucket.values))
        progress.finish(f"check {name}")
        plan.seconds = time.perf_counter() - started
        log.debug(
            "%s: %d staged (%d new, %d changed), %d failed",
            name,
            len(plan.rows),
            plan.new,
            plan.changed,
            len(plan.failures),
        )
        plans[name] = plan
    return plans


def _map_bucket(plan: EntityPlan, now: datetime) -> dict[str, Mapped]:
    mapped = {}
    with _no_gc():
        for key, data in plan.bucket.values.items():
            try:
                mapped[key] = map_value(plan.spec, key, data, now)
            except Rejected as exc:
                plan.failures.append(Failure(plan.spec.name, key, str(exc)))
    return mapped


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Mapping keeps a few new objects per record, none in cycles: the cyclic collector would
    rescan the growing heap over and over (~20% of the mapping time) for garbage that is not there."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reject(plan: EntityPlan, mapped: dict[str, Mapped], key: str, reason: str) -> None:
    del mapped[key]
    plan.failures.append(Failure(plan.spec.name, key, reason))


def _check_references(
    plan: EntityPlan, mapped: dict[str, Mapped], known: dict[str, set[str]], failed: dict[str, set[str]]
) -> None:
    for fk in plan.spec.foreign_keys:
        parents = known[fk.parent]
        for key, m in list(mapped.items()):
            value = m.row[fk.field]
            if value is not None and value not in parents:
                why = " (it could not be migrated)" if value in failed[fk.parent] else ""
                _reject(plan, mapped, key, f"{fk.field}: {fk.parent} {value} does not exist{why}")


def _check_unique(cur: Cursor, plan: EntityPlan, mapped: dict[str, Mapped], stored: set[str]) -> None:
    """Of records sharing a unique key, the row already stored wins, then the oldest record
    (without created_at: last; ties: smallest id)."""
    spec = plan.spec
    for unique in spec.unique:
        folded = ", ".join(f"lower({quote(name)})" for name in unique.fields)
        taken: dict[tuple[Any, ...], str] = {}
        for row_id, *values in cur.execute(f"SELECT id, {folded} FROM {quote(spec.name)}").fetchall():
            if row_id not in mapped:  # a stored row this run rewrites is judged by its new values below
                taken[tuple(values)] = row_id

        def precedence(item: tuple[str, Mapped]) -> tuple[bool, bool, datetime, str]:
            key, created = item[0], item[1].row["created_at"]
            return key not in stored, created is None, created or datetime.min, key

        for key, m in sorted(mapped.items(), key=precedence):
            folded_values = tuple(_fold(m.row[name]) for name in unique.fields)
            holder = taken.setdefault(folded_values, key)
            if holder != key:
                _reject(plan, mapped, key, f"duplicate: {unique.message} ({spec.name} {holder})")


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _check_secrets(plan: EntityPlan, mapped: dict[str, Mapped], stored: set[str]) -> None:
    """A new row needs its secret columns (users.password_hash); an existing one keeps its own."""
    legacy = {new: old for old, new in plan.spec.legacy_names.items()}
    for name in plan.spec.secret_columns:
        for key, m in list(mapped.items()):
            if m.row[name] is None and key not in stored:
                _reject(plan, mapped, key, f"invalid: missing required field `{legacy.get(name, name)}`")


# -- staging and comparing -------------------------------------------------------
def _stage_columns(spec: EntitySpec) -> list[tuple[str, Kind]]:
    return [(c.name, c.kind) for c in spec.columns] + [(name, Kind.TEXT) for name in spec.secret_columns]


_READ_AS = {Kind.BOOLEAN: "BOOLEAN", Kind.INTEGER: "BIGINT"}  # everything else arrives as a string


def _stage(cur: Cursor, plan: EntityPlan) -> None:
    columns = _stage_columns(plan.spec)
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {plan.stage} ({', '.join(f'{quote(n)} {k.value}' for n, k in columns)})")
    if not plan.rows:
        return
    fd, path = tempfile.mkstemp(prefix=f"ekko-migrate-{plan.spec.name}-", suffix=".ndjson")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"\n".join(map(encode, plan.rows)))
        read_as = ", ".join(f"'{n}': '{_READ_AS.get(k, 'VARCHAR')}'" for n, k in columns)
        casts = ", ".join(f"CAST({quote(n)} AS {k.value})" for n, k in columns)
        cur.execute(
            f"INSERT INTO {plan.stage} SELECT {casts}"
            f" FROM read_json(?, format='newline_delimited', columns={{{read_as}}})",
            [path],
        )
    finally:
        os.unlink(path)


def _same(spec: EntitySpec, s: str, t: str) -> str:
    """SQL: staged row `s` holds what row `t` holds. Timestamps the migration filled and
    secrets a value lacks match anything; JSON is compared as text."""
    terms = []
    for name, kind in _stage_columns(spec):
        left, right = f"{s}.{quote(name)}", f"{t}.{quote(name)}"
        if kind is Kind.JSON:
            left, right = f"CAST({left} AS VARCHAR)", f"CAST({right} AS VARCHAR)"
        term = f"{left} IS NOT DISTINCT FROM {right}"
        if name in FILLABLE or name in spec.secret_columns:
            term = f"({left} IS NULL OR {term})"
        terms.append(term)
    return " AND ".join(terms)


def classify(cur: Cursor, plan: EntityPlan) -> None:
    """Count staged rows that are new, and those whose stored row differs."""
    table = quote(plan.spec.name)
    new, changed = f"{table}.id IS NULL", f"{table}.id IS NOT NULL AND NOT ({_same(plan.spec, 's', table)})"
    row = one_row(
        cur,
        f"SELECT count(*) FILTER (WHERE {new}), count(*) FILTER (WHERE {changed}),"
        f" (list(s.id ORDER BY s.id) FILTER (WHERE {new}))[1:{SAMPLE}],"
        f" (list(s.id ORDER BY s.id) FILTER (WHERE {changed}))[1:{SAMPLE}]"
        f" FROM {plan.stage} AS s LEFT JOIN {table} ON {table}.id = s.id",
    )
    plan.new, plan.changed = int(row[0]), int(row[1])
    plan.sample_new, plan.sample_changed = row[2] or [], row[3] or []


def write(cur: Cursor, plan: EntityPlan, now: datetime, *, update: bool) -> tuple[int, int]:
    """Insert the new rows (filled timestamps = now); with `update`, overwrite the changed
    ones (keeping stored timestamps and secrets the value lacks). Returns (inserted, updated)."""
    spec, table = plan.spec, quote(plan.spec.name)
    names = [n for n, _ in _stage_columns(spec)]
    select = ", ".join(f"coalesce(s.{quote(n)}, ?)" if n in FILLABLE else f"s.{quote(n)}" for n in names)
    # Each unique key's column (service/store/tables.py), from the staged fields: duplicates
    # were rejected above, so every row written holds its key.
    keys = {key.column: key_sql(key, "s") for key in spec.unique}
    inserted = updated = 0
    if plan.new:
        cur.execute(
            f"INSERT INTO {table} ({', '.join(map(quote, [*names, *keys]))})"
            f" SELECT {', '.join([select, *keys.values()])} FROM {plan.stage} AS s"
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {table}.id = s.id)",
            [now.replace(tzinfo=None)] * len(FILLABLE),
        )
        inserted = plan.new
    if update and plan.changed:
        keep = set(FILLABLE) | set(spec.secret_columns)
        sets = ", ".join(
            f"{quote(n)} = coalesce(s.{quote(n)}, {table}.{quote(n)})" if n in keep else f"{quote(n)} = s.{quote(n)}"
            for n in names
            if n != "id"
        )
        sets = ", ".join([sets, *(f"{quote(column)} = {sql}" for column, sql in keys.items())])
        cur.execute(
            f"UPDATE {table} SET {sets} FROM {plan.stage} AS s"
            f" WHERE {table}.id = s.id AND NOT ({_same(spec, 's', table)})"
        )
        updated = plan.changed
    return inserted, updated


def integrity(cur: Cursor, plans: dict[str, EntityPlan]) -> list[TableCheck]:
    """Staged rows against the tables (missing, different) and foreign-key orphans."""
    checks = []
    for name, plan in plans.items():
        classify(cur, plan)
        orphans: list[str] = []
        for fk in plan.spec.foreign_keys:
            child, parent, column = quote(name), quote(fk.parent), quote(fk.field)
            orphans += [
                r[0]
                for r in cur.execute(
                    f"SELECT c.id FROM {child} AS c WHERE c.{column} IS NOT NULL"
                    f" AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE p.id = c.{column}) ORDER BY c.id"
                ).fetchall()
            ]
        checks.append(
            TableCheck(
                table=name,
                kv_keys=len(plan.bucket.values),
                migratable=len(plan.rows),
                db_rows=count_rows(cur, name),
                missing=plan.new,
                different=plan.changed,
                orphans=len(orphans),
                sample_missing=plan.sample_new,
                sample_different=plan.sample_changed,
                sample_orphans=orphans[:SAMPLE],
            )
        )
    return checks


def drop_stages(cur: Cursor, plans: dict[str, EntityPlan]) -> None:
    for plan in plans.values():
        cur.execute(f"DROP TABLE IF EXISTS {plan.stage}")
