"""service.store.listing: filters, operators, sort and keyset cursors, checked against the registry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schema.common import ListRequest
from service.model.errors import ValidationFailed
from service.model.registry import ENTITIES
from service.store.listing import KNOWN_OPERATORS, build_query, decode_cursor, encode_cursor, parse_filters, parse_sort
from service.store.repository import Condition, SortKey

WALLETS = ENTITIES["wallets"]
WALLET_ID = "7f1d1a3e-0000-4000-8000-000000000001"


def wallet_record(**fields: object) -> object:
    now = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    values = {
        "id": WALLET_ID,
        "created_at": now,
        "updated_at": now,
        "version": 3,
        "blockchain_symbol": "ETH",
        "address": "0x" + "ab" * 20,
        "balance": Decimal("1.50000000"),
        "status": "active",
    }
    return WALLETS.record(**{**values, **fields})


def rejected(call, *args) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        call(*args)
    return raised.value


# -- filters ----------------------------------------------------------------------


def test_a_plain_value_means_equality_and_values_take_the_column_type() -> None:
    conditions = parse_filters(WALLETS, {"status": "active", "balance": 1.5, "version": "2"})
    assert conditions == (
        Condition("status", "eq", "active"),
        Condition("balance", "eq", Decimal("1.5")),
        Condition("version", "eq", 2),
    )


def test_every_operator_becomes_a_condition() -> None:
    filters = {
        "balance": {"gt": "1", "gte": 1, "lt": "9.5", "lte": 9, "ne": 5, "eq": "4"},
        "name": {"contains": "Main", "is_null": False},
        "status": {"in": ["active", "frozen"]},
    }
    conditions = parse_filters(WALLETS, filters)
    assert {c.op for c in conditions} == KNOWN_OPERATORS
    assert Condition("status", "in", ("active", "frozen")) in conditions
    assert Condition("name", "is_null", False) in conditions
    assert Condition("balance", "lt", Decimal("9.5")) in conditions


def test_timestamps_are_compared_as_naive_utc() -> None:
    (condition,) = parse_filters(WALLETS, {"created_at": {"gte": "2024-03-01T14:00:00+02:00"}})
    assert condition.value == datetime(2024, 3, 1, 12, 0)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"colour": "red"}, "filters.colour"),
        ({"id; DROP TABLE wallets": 1}, "filters.id; DROP TABLE wallets"),
        ({"balance": {"like": "1"}}, "filters.balance"),
        ({"balance": {}}, "filters.balance"),
        ({"balance": {"gt": "lots"}}, "filters.balance.gt"),
        ({"version": {"eq": "two"}}, "filters.version.eq"),
        ({"balance": {"contains": "1"}}, "filters.balance.contains"),
        ({"name": {"is_null": "yes"}}, "filters.name.is_null"),
        ({"status": {"in": "active"}}, "filters.status.in"),
        ({"status": {"in": ["x"] * 1001}}, "filters.status.in"),
        ({"status": None}, "filters.status.eq"),
        ({"created_at": "yesterday"}, "filters.created_at.eq"),
    ],
)
def test_a_bad_filter_names_the_field_at_fault(filters: dict, field: str) -> None:
    error = rejected(parse_filters, WALLETS, filters)
    assert error.details[0].field == field


def test_booleans_are_not_ordered_and_json_fields_are_not_filterable() -> None:
    assert rejected(parse_filters, ENTITIES["users"], {"is_active": {"gt": True}}).details[0].field == (
        "filters.is_active.gt"
    )
    assert parse_filters(ENTITIES["users"], {"is_active": {"ne": True}}) == (Condition("is_active", "ne", True),)
    assert rejected(parse_filters, ENTITIES["workflows"], {"steps": []}).details[0].field == "filters.steps"


# -- sort -------------------------------------------------------------------------


def test_sort_keys_keep_their_direction_and_end_with_id() -> None:
    assert parse_sort(WALLETS, ["-balance", "created_at"]) == (
        SortKey("balance", True),
        SortKey("created_at"),
        SortKey("id"),
    )
    assert parse_sort(WALLETS, []) == (SortKey("id"),)
    assert parse_sort(WALLETS, ["-id"]) == (SortKey("id", True),)


@pytest.mark.parametrize("sort", [["colour"], ["-name"], ["balance", "-balance"], ["--balance"], [""]])
def test_a_bad_sort_is_refused(sort: list[str]) -> None:
    assert rejected(parse_sort, WALLETS, sort).details[0].field == "sort"


# -- cursors ----------------------------------------------------------------------


def request(**fields: object) -> ListRequest:
    return ListRequest(**{"filters": {"status": "active"}, "sort": ["-balance", "created_at"], **fields})


def cursor_for(req: ListRequest) -> str:
    return encode_cursor(WALLETS, req, wallet_record(), parse_sort(WALLETS, req.sort))


def test_a_cursor_round_trips_to_the_sort_values_of_the_last_row() -> None:
    req = request()
    cursor = cursor_for(req)
    assert "=" not in cursor and cursor.isascii()
    after = decode_cursor(WALLETS, request(cursor=cursor), parse_sort(WALLETS, req.sort))
    assert after == (Decimal("1.50000000"), datetime(2024, 3, 1, 12, 30, 15, 123456), WALLET_ID)


def test_a_cursor_may_be_used_with_another_limit() -> None:
    cursor = cursor_for(request(limit=2))
    assert build_query(WALLETS, request(cursor=cursor, limit=500)).after is not None


@pytest.mark.parametrize(
    "changed",
    [
        {"filters": {"status": "frozen"}},
        {"filters": {}},
        {"sort": ["balance", "created_at"]},
        {"sort": ["-balance"]},
    ],
)
def test_a_cursor_used_with_other_filters_or_sort_is_refused(changed: dict) -> None:
    cursor = cursor_for(request())
    assert rejected(build_query, WALLETS, request(cursor=cursor, **changed)).details[0].field == "cursor"


def tampered(cursor: str, edit) -> str:
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps(edit(raw)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "edit",
    [
        lambda raw: [raw[0][::-1], raw[1]],  # fingerprint altered
        lambda raw: [raw[0], raw[1][:-1]],  # a sort value dropped
        lambda raw: [raw[0], [*raw[1], "extra"]],
        lambda raw: [raw[0], ["not a number", *raw[1][1:]]],  # a value of the wrong type
        lambda raw: [raw[0], [None, *raw[1][1:]]],
        lambda raw: {"fingerprint": raw[0]},
    ],
)
def test_a_tampered_cursor_is_refused(edit) -> None:
    cursor = tampered(cursor_for(request()), edit)
    with pytest.raises(ValidationFailed) as raised:
        build_query(WALLETS, request(cursor=cursor))
    assert "cursor" in raised.value.message


@pytest.mark.parametrize("cursor", ["", "not base64!", "é", base64.urlsafe_b64encode(b"{not json").decode(), "AAAA"])
def test_garbage_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailed, match="cursor"):
        build_query(WALLETS, request(cursor=cursor))


def test_a_query_carries_conditions_sort_limit_and_position() -> None:
    query = build_query(WALLETS, request(limit=7))
    assert query.conditions == (Condition("status", "eq", "active"),)
    assert query.sort[-1] == SortKey("id")
    assert (query.limit, query.after) == (7, None)
