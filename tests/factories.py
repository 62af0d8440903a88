"""Valid create payloads for every entity, with their parents created first.

The payloads come from tests/fixtures/entities.json: per entity one valid create
payload (foreign keys left out) and one edit (a field it lets you change, and a value
as replies show it). Strings are templates: `{n}` (any str.format spec, e.g.
`{n:040x}`) becomes the record number, so each row differs and sorting has something
to sort. Every test that lists entities takes them from there or from the registry,
so a new entity needs one entry in that file; one without an entry fails loudly.

`Factory(client).create("workflow_executions")` creates a user, a workflow and
then the execution; parents made this way are reused by later rows, unless the
caller passes the foreign key itself (`workflow_id=...`).
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from service.model.columns import Column, strip_optional
from service.model.registry import ENTITIES, EntitySpec
from tests.client import Client

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "entities.json"
ENTITY_FIXTURES: dict[str, dict[str, Any]] = json.loads(FIXTURE.read_text())
MAX_N = 999_999  # templates such as a timestamp's microseconds hold six digits

_numbers = itertools.count(1)


def wallet_record(n: int, **fields: Any) -> msgspec.Struct:
    """Wallet n as stored (id UUID n, address 0x + n in hex), for tests that write rows
    through a repository rather than over NATS; `fields` replace its values."""
    created = datetime(2024, 1, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": str(uuid.UUID(int=n)),
        "created_at": created,
        "updated_at": created,
        "version": 1,
        "blockchain_symbol": "ETH",
        "address": f"0x{n:040x}",
        "balance": Decimal("0E-8"),
        "status": "active",
    }
    return ENTITIES["wallets"].record(**(values | fields))


def fixture(entity: str) -> dict[str, Any]:
    """The entity's entry in tests/fixtures/entities.json; a clear failure when it has none."""
    if entity not in ENTITY_FIXTURES:
        raise AssertionError(
            f"tests/fixtures/entities.json has no entry for {entity!r}: add one valid create payload"
            ' (foreign keys left out) and an edit: {"create": {...}, "edit": {"field": value}}'
        )
    return ENTITY_FIXTURES[entity]


def render(template: Any, n: int) -> Any:
    """The template with every string formatted with n (nested lists and objects too)."""
    if isinstance(template, str):
        return template.format(n=n)
    if isinstance(template, list):
        return [render(item, n) for item in template]
    if isinstance(template, dict):
        return {key: render(value, n) for key, value in template.items()}
    return template


def payload_of(entity: str, n: int) -> dict[str, Any]:
    """Record number n's create payload, foreign keys left out (the factory fills them in)."""
    assert 0 <= n <= MAX_N, n
    body: dict[str, Any] = render(fixture(entity)["create"], n)
    return body


def edit_of(entity: str) -> tuple[str, Any]:
    """A field the entity lets you change, and a value it can take (as replies show it)."""
    ((field, value),) = fixture(entity)["edit"].items()
    return field, value


PASSWORD: str = ENTITY_FIXTURES["users"]["create"]["password"]


def required_field(spec: EntitySpec) -> str:
    """The first create field that may not be null (sending null for it must be rejected)."""
    for field in msgspec.structs.fields(spec.create):
        if field.name != "id" and not strip_optional(field.type)[1]:
            return field.name
    raise AssertionError(f"{spec.name} has no required field")


def nullable_column(spec: EntitySpec) -> Column:
    """A filterable column the factory leaves null."""
    fk_fields = {fk.field for fk in spec.foreign_keys}
    payload = payload_of(spec.name, 0)
    for column in spec.columns:
        if column.nullable and column.scalar and column.name not in fk_fields and column.name not in payload:
            return column
    raise AssertionError(f"{spec.name} has no nullable column the factory leaves null")


class Factory:
    """Creates rows over NATS, exactly as a caller would."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._parents: dict[str, str] = {}

    async def payload(self, entity: str, **fields: Any) -> dict[str, Any]:
        body = payload_of(entity, next(_numbers))
        for fk in ENTITIES[entity].foreign_keys:
            if fk.field not in fields:
                body[fk.field] = await self.parent(fk.parent)
        body.update(fields)
        return body

    async def create(self, entity: str, **fields: Any) -> dict[str, Any]:
        return await self.client.ok(f"ekko.{entity}.create", await self.payload(entity, **fields))

    async def create_many(self, entity: str, count: int) -> list[dict[str, Any]]:
        return [await self.create(entity) for _ in range(count)]

    async def parent(self, entity: str) -> str:
        """The id of a row of `entity` shared by children that did not name one."""
        if entity not in self._parents:
            self._parents[entity] = (await self.create(entity))["id"]
        return self._parents[entity]
