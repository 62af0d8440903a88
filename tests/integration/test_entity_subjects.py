"""Issue 2: create, get, update, delete and list answer over NATS for every entity."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from service.model.columns import Kind
from service.model.registry import ENTITIES, EntitySpec
from tests.client import Client, assert_rejected
from tests.factories import Factory, edit_of, nullable_column, required_field
from tests.support import python_sorted

entities = pytest.mark.parametrize("entity", list(ENTITIES))


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def sort_value(spec: EntitySpec, field: str, item: dict[str, Any]) -> Any:
    kind = spec.column_map[field].kind
    value = item[field]
    if value is None:
        return None
    return Decimal(value) if kind is Kind.DECIMAL else when(value) if kind is Kind.TIMESTAMP else value


def expected_order(spec: EntitySpec, items: list[dict[str, Any]], sort: str) -> list[str]:
    """Ids in the order the sort must give: by the field (NULL above every value), ties by id ascending."""
    keys = [(sort.lstrip("-"), sort.startswith("-")), ("id", False)]
    return [i["id"] for i in python_sorted(items, keys, lambda item, field: sort_value(spec, field, item))]


async def pages(client: Client, entity: str, request: dict[str, Any], limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a list request, following next_cursor to the end."""
    result: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        body = await client.ok(f"ekko.{entity}.list", {**request, "limit": limit, "cursor": cursor})
        result.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return result
        assert len(result) < 100, "pagination does not end"


# -- create and get ---------------------------------------------------------------


@entities
async def test_create_generates_an_id_at_version_one_and_get_returns_the_same(entity: str, make: Factory) -> None:
    payload = await make.payload(entity)
    created = await make.client.ok(f"ekko.{entity}.create", payload)
    assert str(uuid.UUID(created["id"])) == created["id"]
    assert created["version"] == 1
    assert created["created_at"] == created["updated_at"]
    assert created["created_at"].endswith("Z")
    assert when(created["created_at"]).utcoffset().total_seconds() == 0
    spec = ENTITIES[entity]
    for name, value in payload.items():
        if name in spec.column_map and spec.column_map[name].kind in (Kind.TEXT, Kind.BOOLEAN):
            assert created[name] == value, name
    assert await make.client.ok(f"ekko.{entity}.get", {"id": created["id"]}) == created
    assert_rejected(await make.client.request(f"ekko.{entity}.get", {"id": str(uuid.uuid4())}), 404)


@entities
async def test_create_keeps_a_client_supplied_uuid(entity: str, make: Factory) -> None:
    chosen = str(uuid.uuid4())
    created = await make.create(entity, id=chosen)
    assert created["id"] == chosen
    assert (await make.client.ok(f"ekko.{entity}.get", {"id": chosen}))["id"] == chosen


# -- update -----------------------------------------------------------------------


@entities
async def test_update_changes_only_the_fields_sent_and_bumps_the_version(entity: str, make: Factory) -> None:
    before = await make.create(entity)
    field, value = edit_of(entity)
    assert before[field] != value
    updated = await make.client.ok(f"ekko.{entity}.update", {"id": before["id"], field: value, "expected_version": 1})
    assert updated[field] == value
    assert updated["version"] == 2
    assert when(updated["updated_at"]) > when(before["updated_at"])
    assert updated["updated_at"].endswith("Z")
    untouched = set(before) - {field, "updated_at", "version"}
    assert {k: updated[k] for k in untouched} == {k: before[k] for k in untouched}
    assert await make.client.ok(f"ekko.{entity}.get", {"id": before["id"]}) == updated


@entities
async def test_update_rejects_a_stale_version_an_unknown_field_and_null_for_a_required_field(
    entity: str, make: Factory
) -> None:
    row = await make.create(entity)
    field, value = edit_of(entity)
    row = await make.client.ok(f"ekko.{entity}.update", {"id": row["id"], field: value})
    update = f"ekko.{entity}.update"
    stale = await make.client.request(update, {"id": row["id"], field: value, "expected_version": 1})
    assert_rejected(stale, 409, "expected_version")
    unknown = await make.client.request(update, {"id": row["id"], "colour": "red"})
    assert_rejected(unknown, 400)
    assert "colour" in unknown.error["message"]
    required = required_field(ENTITIES[entity])
    assert_rejected(await make.client.request(update, {"id": row["id"], required: None}), 400, required)
    assert_rejected(await make.client.request(update, {"id": str(uuid.uuid4()), field: value}), 404)
    assert await make.client.ok(f"ekko.{entity}.get", {"id": row["id"]}) == row


# -- delete -----------------------------------------------------------------------


@entities
async def test_delete_replies_deleted_and_the_row_is_gone(entity: str, make: Factory) -> None:
    row = await make.create(entity)
    reply = await make.client.ok(f"ekko.{entity}.delete", {"id": row["id"]})
    assert reply == {"id": row["id"], "deleted": True}
    assert_rejected(await make.client.request(f"ekko.{entity}.get", {"id": row["id"]}), 404)
    assert_rejected(await make.client.request(f"ekko.{entity}.delete", {"id": row["id"]}), 404)


# -- list -------------------------------------------------------------------------


@entities
async def test_list_filters_by_equality_and_by_every_operator(entity: str, make: Factory) -> None:
    client = make.client
    a, b, c = (r["id"] for r in await make.create_many(entity, 3))
    field, value = edit_of(entity)
    await client.ok(f"ekko.{entity}.update", {"id": a, field: value})
    rows = [await client.ok(f"ekko.{entity}.get", {"id": i}) for i in (a, b, c)]
    null_column = nullable_column(ENTITIES[entity]).name
    nulls = {r["id"] for r in rows if r[null_column] is None}
    assert {b, c} <= nulls
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"id": a}, {a}),
        ({"id": {"eq": b}}, {b}),
        ({"id": {"ne": a}}, {b, c}),
        ({"id": {"in": [a, c, str(uuid.uuid4())]}}, {a, c}),
        ({"id": {"in": []}}, set()),
        ({"id": {"contains": a[9:23].upper()}}, {a}),
        ({"version": {"gt": 1}}, {a}),
        ({"version": {"gte": 2}}, {a}),
        ({"version": {"lt": 2}}, {b, c}),
        ({"version": {"lte": 1}}, {b, c}),
        ({"version": {"gte": 1, "lt": 2}}, {b, c}),
        ({"id": {"in": [a, b]}, "version": 1}, {b}),
        ({"created_at": {"gte": rows[1]["created_at"]}}, {b, c}),
        ({null_column: {"is_null": True}}, nulls),
        ({null_column: {"is_null": False}}, {a, b, c} - nulls),
    ]
    for filters, expected in cases:
        body = await client.ok(f"ekko.{entity}.list", {"filters": filters})
        assert {i["id"] for i in body["items"]} == expected, filters
        assert body["next_cursor"] is None


@entities
async def test_list_pages_through_every_row_exactly_once_in_every_sort_order(entity: str, make: Factory) -> None:
    spec = ENTITIES[entity]
    await make.create_many(entity, 7)
    everything = (await make.client.ok(f"ekko.{entity}.list", {"limit": 1000}))["items"]
    assert len(everything) == 7
    for sort in sorted(spec.sort_fields):
        for direction in (sort, f"-{sort}"):
            result = await pages(make.client, entity, {"sort": [direction]}, limit=3)
            assert [len(p) for p in result] == [3, 3, 1], direction
            ids = [i["id"] for p in result for i in p]
            assert len(set(ids)) == len(ids) == 7, direction
            assert ids == expected_order(spec, everything, direction), direction
    default = await pages(make.client, entity, {}, limit=2)
    assert [len(p) for p in default] == [2, 2, 2, 1]
    assert [i["id"] for p in default for i in p] == sorted(i["id"] for i in everything)
    whole = await make.client.ok(f"ekko.{entity}.list", {"limit": 7})
    assert len(whole["items"]) == 7 and whole["next_cursor"] is None


@entities
async def test_list_rejects_bad_requests_with_the_field_at_fault(entity: str, make: Factory) -> None:
    await make.create_many(entity, 2)
    first = await make.client.ok(f"ekko.{entity}.list", {"limit": 1})
    bad: list[tuple[dict[str, Any], str]] = [
        ({"filters": {"nope": 1}}, "filters.nope"),
        ({"filters": {"id": {"regex": "x"}}}, "filters.id"),
        ({"filters": {"version": {"gt": "many"}}}, "filters.version.gt"),
        ({"sort": ["nope"]}, "sort[0]"),
        ({"sort": ["id", "-nope"]}, "sort[1]"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": 1, "cursor": first["next_cursor"], "filters": {"version": 1}}, "cursor"),
        ({"limit": 1, "cursor": first["next_cursor"], "sort": ["-created_at"]}, "cursor"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ]
    for request, field in bad:
        reply = await make.client.request(f"ekko.{entity}.list", request)
        assert reply.status == 400, (request, reply.body)
        assert reply.error["code"] == "validation_error"
        assert field in reply.error["message"] or field in [d.get("field") for d in reply.error["details"]], (
            request,
            reply.error,
        )
