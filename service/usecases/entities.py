"""The generic create/get/update/delete/list path every entity shares.

Rules that differ per entity live in service.model.rules; foreign keys and unique
keys come from the registry. Every write runs as one writer transaction that
also fills the outbox; the cache and the relay hear about it after commit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from schema.common import (
    UNSET,
    CreateRequest,
    DeleteReply,
    DeleteRequest,
    ListReply,
    ListRequest,
    Record,
    UpdateRequest,
    encode,
)
from service.model.columns import utc_now
from service.model.errors import Conflict, Detail, Forbidden, NotFound
from service.model.ids import new_id
from service.model.limits import PayloadLimit
from service.model.registry import ENTITIES, EntitySpec, UniqueKey, children_of
from service.model.rules import Rules
from service.model.values import canonical_id, check_integer, normalize
from service.store.database import Database
from service.store.outbox import Change
from service.store.repository import Repository
from service.store.sql import Cursor
from service.store.uow import UnitOfWork
from service.store.write_batch import Lookup
from service.usecases.batching import BatchedLookup
from service.usecases.cache import RecordCache
from service.usecases.listing import list_page
from service.usecases.page_spans import PageSpans

AfterCommit = Callable[[Sequence[Change]], None]
# (entity, row before, row after) of each row a write created, updated or deleted.
Touched = tuple[str, Record | None, Record | None]
# Keeps state derived from rows in step, inside the write's transaction (service.usecases.balances).
Derive = Callable[[UnitOfWork, list[Touched]], None]
T = TypeVar("T")


def sent_fields(request: msgspec.Struct) -> dict[str, Any]:
    """The fields of a request the caller actually sent (UNSET ones left out)."""
    return {f: v for f in request.__struct_fields__ if (v := getattr(request, f)) is not UNSET}


class EntityService:
    """CRUD for one entity. Built once per entity by the app factory."""

    def __init__(
        self,
        spec: EntitySpec,
        db: Database,
        cache: RecordCache,
        rules: Rules,
        *,
        after_commit: AfterCommit,
        limit: PayloadLimit | None = None,
        derive: Derive | None = None,
    ) -> None:
        self.spec = spec
        self.derive = derive
        self.limit = limit or PayloadLimit()
        self.db = db
        self.cache = cache
        self.rules = rules
        self._after_commit = after_commit
        self._misses = BatchedLookup(self._read_many_encoded)
        self._spans = PageSpans()

    async def _read_many_encoded(self, ids: Sequence[str]) -> dict[str, bytes]:
        return await self.db.read(functools.partial(_read_encoded, self.spec, ids))

    async def _write(self, work: Callable[[UnitOfWork], T], lookups: Sequence[Lookup] = ()) -> T:
        """Run work in a writer transaction; lookups: the (table, id) it will check exist."""

        def transaction(uow: UnitOfWork) -> tuple[T, list[Change]]:
            return work(uow), uow.changes

        result, changes = await self.db.write(transaction, lookups=lookups)
        self.cache.apply(changes)
        self._after_commit(changes)
        return result

    # -- create --------------------------------------------------------------
    async def create(self, request: CreateRequest, *, privileged: bool = False) -> Record:
        """`privileged`: the caller came through an admin subject and may set privileged fields."""
        values = sent_fields(request)
        if not privileged:
            refuse_privileged(self.spec, {k: v for k, v in values.items() if v != self.spec.privileged.get(k, v)})
        values, secrets = await self.rules.prepare(values, creating=True)
        now = utc_now()
        values = normalize(self.spec, values)
        # Ids are canonical lower-case UUIDs, so "ABC…" and "abc…" cannot become two rows.
        # Only a caller's id can already exist: a fresh random id spares the writer a lookup.
        client_id = "id" in values
        entity_id = values["id"] if client_id else new_id()  # normalize() lower-cased it
        values.update(id=entity_id, created_at=now, updated_at=now, version=1)
        record = self.spec.record(**values)
        self.rules.check(record)
        self.limit.check_record(self.spec.name, encode(record))  # before anything is written

        def work(uow: UnitOfWork) -> Record:
            repo = uow.repo(self.spec)
            if client_id and repo.exists(record.id):
                raise Conflict(f"{self.spec.name} {record.id} already exists", [Detail("id", "already exists")])
            check_references(uow, self.spec, record, self.spec.column_map)
            check_unique(uow, self.spec, record, None)
            repo.insert(record, secrets)
            uow.record(self.spec, "created", record)
            self._derive(uow, [(self.spec.name, None, record)])
            return record

        lookups: list[Lookup] = [
            (fk.parent, v) for fk in self.spec.foreign_keys if (v := getattr(record, fk.field)) is not None
        ]
        if client_id:
            lookups.append((self.spec.name, record.id))
        # Every key's holder is looked up for the whole group in one indexed query.
        lookups += [(self.spec.name, key.column, key.normalized(_fields(record, key))) for key in self.spec.unique]
        return await self._write(work, lookups)

    def _derive(self, uow: UnitOfWork, touched: list[Touched]) -> None:
        if self.derive is not None:
            self.derive(uow, touched)

    # -- get -----------------------------------------------------------------
    async def get_encoded(self, entity_id: str) -> bytes:
        """The record as reply bytes: from the cache, else from DuckDB (and then cached).
        A miss is one pool-thread hop that returns the bytes, shared with the misses that
        arrive meanwhile (service.usecases.batching): the rows are encoded there, never
        built into records (service.store.rows.encode_row)."""
        entity_id = canonical_id(entity_id)
        if (data := self.cache.get(self.spec.name, entity_id)) is not None:
            return data
        token = self.cache.token(self.spec.name)
        found = await self._misses.get(entity_id)
        if found is None:
            raise NotFound(f"{self.spec.name} {entity_id} not found")
        self.cache.fill(self.spec.name, entity_id, found, token)
        return found

    # -- update --------------------------------------------------------------
    async def update(self, request: UpdateRequest, *, privileged: bool = False) -> Record:
        changes = sent_fields(request)
        entity_id = canonical_id(changes.pop("id"))
        expected = changes.pop("expected_version", None)
        if expected is not None:
            check_integer("expected_version", expected)
        changes, secrets = await self.rules.prepare(changes, creating=False)
        changes = normalize(self.spec, changes)

        def work(uow: UnitOfWork) -> Record:
            repo = uow.repo(self.spec)
            current = load_current(repo, self.spec, entity_id, expected)
            if not privileged:  # sending the current value is fine; changing it is not
                refuse_privileged(self.spec, {k: v for k, v in changes.items() if v != getattr(current, k)})
            if not changes and not secrets:
                return current  # nothing to change: no new version, no event
            record = msgspec.structs.replace(current, **changes, updated_at=utc_now(), version=current.version + 1)
            self.rules.check(record)
            self.limit.check_record(self.spec.name, encode(record))  # refused before it writes
            check_references(uow, self.spec, record, changes)
            if any(name in changes for key in self.spec.unique for name in key.fields):
                check_unique(uow, self.spec, record, record.id)
            repo.update(record, changes, secrets)
            uow.record(self.spec, "updated", record, before=current)
            self._derive(uow, [(self.spec.name, current, record)])
            return record

        return await self._write(work)

    # -- delete --------------------------------------------------------------
    async def delete(self, request: DeleteRequest) -> DeleteReply:
        expected = None if request.expected_version is UNSET else request.expected_version
        if expected is not None:
            check_integer("expected_version", expected)
        entity_id = canonical_id(request.id)

        def work(uow: UnitOfWork) -> DeleteReply:
            current = load_current(uow.repo(self.spec), self.spec, entity_id, expected)
            touched: list[Touched] = []
            delete_tree(uow, self.spec, current, cascade=request.cascade, touched=touched)
            self._derive(uow, touched)
            return DeleteReply(id=entity_id)

        return await self._write(work)

    # -- list ----------------------------------------------------------------
    async def list(self, request: ListRequest) -> ListReply:
        return await list_page(self.spec, self.db, self.limit, request, self._spans)


def _read_encoded(spec: EntitySpec, ids: Sequence[str], cur: Cursor) -> dict[str, bytes]:
    return Repository(spec, cur).get_many_encoded(ids)


def refuse_privileged(spec: EntitySpec, values: dict[str, Any]) -> None:
    """403 when `values` (what the caller would set) holds a privileged field."""
    if fields := [name for name in values if name in spec.privileged]:
        raise Forbidden(
            f"{', '.join(fields)} can be set only through {spec.name} admin subjects"
            f" (ekko.admin.{spec.name}.create|update)",
            [Detail(name, "can be set only by an admin") for name in fields],
        )


def load_current(repo: Repository, spec: EntitySpec, entity_id: str, expected_version: int | None) -> Record:
    current = repo.get(entity_id)
    if current is None:
        raise NotFound(f"{spec.name} {entity_id} not found")
    if expected_version is not None and expected_version != current.version:
        raise Conflict(
            f"{spec.name} {entity_id} is at version {current.version}, not {expected_version}",
            [Detail("expected_version", f"current version is {current.version}")],
        )
    return current


def check_references(uow: UnitOfWork, spec: EntitySpec, record: Record, fields: Any) -> None:
    """Every foreign key among `fields` points at an existing parent (404 when not)."""
    for fk in spec.foreign_keys:
        value = getattr(record, fk.field)
        if fk.field in fields and value is not None and not uow.repo(ENTITIES[fk.parent]).exists(value):
            raise NotFound(
                f"{fk.field}: {fk.parent} {value} does not exist",
                [Detail(fk.field, f"no {fk.parent} with id {value}")],
            )


def _fields(record: Record, key: UniqueKey) -> dict[str, Any]:
    return {name: getattr(record, name) for name in key.fields}


def check_unique(uow: UnitOfWork, spec: EntitySpec, record: Record, exclude_id: str | None) -> None:
    """409 when another row holds one of the record's unique keys. Answered from what the
    writer's group knows (the keys its creates declared, the rows it holds back) or by one
    index lookup: a check never sends the group's rows out one by one."""
    for key in spec.unique:
        if uow.repo(spec).find_duplicate(key, _fields(record, key), exclude_id) is not None:
            raise Conflict(key.message, [Detail(name, "already taken") for name in key.fields])


def delete_tree(
    uow: UnitOfWork, spec: EntitySpec, record: Record, *, cascade: bool, touched: list[Touched] | None = None
) -> None:
    """Delete a row; its children too when cascading, else refuse while it has any.
    `touched` collects every row deleted."""
    for child, fk in children_of(spec.name):
        ids = uow.repo(child).ids_where(fk.field, record.id)
        if not ids:
            continue
        if not cascade:
            raise Conflict(
                f"{spec.name} {record.id} still has {len(ids)} {child.name}; delete them first or send cascade=true",
                [Detail(child.name, f"{len(ids)} rows reference it through {fk.field}")],
            )
        for child_id in ids:
            delete_tree(uow, child, load_current(uow.repo(child), child, child_id, None), cascade=True, touched=touched)
    uow.repo(spec).delete(record.id)
    uow.record(spec, "deleted", record)
    if touched is not None:
        touched.append((spec.name, record, None))
