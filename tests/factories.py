"""Valid create payloads for every entity, with their parents created first.

`Factory(client).create("workflow_executions")` creates a user, a workflow and
then the execution; parents made this way are reused by later rows, unless the
caller passes the foreign key itself (`workflow_id=...`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgspec

from service.model.columns import Column, strip_optional
from service.model.registry import ENTITIES, EntitySpec
from tests.client import Client

PASSWORD = "correct horse battery"

_numbers = itertools.count(1)

# The entity's own fields, foreign keys left out (the factory fills them in).
# Each value varies with n, so sorting by any field has something to sort.
PAYLOADS: dict[str, Callable[[int], dict[str, Any]]] = {
    # No role: only ekko.admin.users.* may set one (403 on ekko.users.*).
    "users": lambda n: {"email": f"user{n}@example.com", "password": PASSWORD},
    "wallets": lambda n: {"blockchain_symbol": "ETH", "address": f"0x{n:040x}", "balance": f"{n}.25"},
    "alerts": lambda n: {"type": f"price{n % 4}", "message": f"alert {n}", "priority": "high"},
    "wallet_balances": lambda n: {"balance": f"{n}.5", "timestamp": f"2024-01-{n % 28 + 1:02d}T10:00:00Z"},
    "alert_rules": lambda n: {"name": f"rule {n}", "condition": {"above": n}, "action": {"notify": "email"}},
    "workflows": lambda n: {"name": f"workflow {n}", "steps": [{"id": "s1", "name": "fetch", "type": "http"}]},
    "workflow_executions": lambda n: {"status": f"status{n % 3}"},
    "agents": lambda n: {"name": f"agent {n}", "type": f"type{n % 2}", "config": {"interval": n}},
}

# A field each entity lets you change, and a value it can take (as replies show it).
EDITS: dict[str, tuple[str, Any]] = {
    "users": ("full_name", "Ada Lovelace"),
    "wallets": ("name", "savings"),
    "alerts": ("message", "edited message"),
    "wallet_balances": ("balance", "2.00000000"),
    "alert_rules": ("name", "renamed rule"),
    "workflows": ("name", "renamed workflow"),
    "workflow_executions": ("status", "completed"),
    "agents": ("name", "renamed agent"),
}


def required_field(spec: EntitySpec) -> str:
    """The first create field that may not be null (sending null for it must be rejected)."""
    for field in msgspec.structs.fields(spec.create):
        if field.name != "id" and not strip_optional(field.type)[1]:
            return field.name
    raise AssertionError(f"{spec.name} has no required field")


def nullable_column(spec: EntitySpec) -> Column:
    """A filterable column the factory leaves null."""
    fk_fields = {fk.field for fk in spec.foreign_keys}
    payload = PAYLOADS[spec.name](0)
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
        body = PAYLOADS[entity](next(_numbers))
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
