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
from service.store.listing import (
    MAX_CONDITIONS,
    MAX_GROUP_DEPTH,
    MAX_IN_VALUES,
    OPERATORS,
    Include,
    build_query,
    decode_cursor,
    encode_cursor,
    parse_filters,
    parse_include,
    parse_select,
    parse_sort,
    plan_list,
)
from service.store.repository import AnyOf, Condition, SortKey

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
        "name": {"contains": "Main", "is_null": False, "like": "M%", "ilike": "m\\_%"},
        "status": {"in": ["active", "frozen"]},
    }
    conditions = parse_filters(WALLETS, filters)
    assert {c.op for c in conditions if isinstance(c, Condition)} == set(OPERATORS)
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
        ({"balance": {"like": "1"}}, "filters.balance.like"),
        ({"balance": {"regex": "1"}}, "filters.balance"),
        ({"name": {"like": "50\\"}}, "filters.name.like"),
        ({"name": {"ilike": "a\\b"}}, "filters.name.ilike"),
        ({"name": {"like": 5}}, "filters.name.like"),
        ({"or": {}}, "filters.or"),
        ({"or": []}, "filters.or"),
        ({"and": "status"}, "filters.and"),
        ({"or": [{"status": "active"}, "x"]}, "filters.or[1]"),
        ({"or": [{"status": "active"}, {"colour": 1}]}, "filters.or[1].colour"),
        ({"or": [{"and": [{"balance": {"gt": "NaN"}}]}]}, "filters.or[0].and[0].balance.gt"),
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


@pytest.mark.parametrize(
    ("sort", "field"),
    [(["colour"], "sort[0]"), (["name", "-name"], "sort[1]"), (["--balance"], "sort[0]"), ([""], "sort[0]")],
)
def test_a_bad_sort_is_refused_naming_the_item(sort: list[str], field: str) -> None:
    assert rejected(parse_sort, WALLETS, sort).details[0].field == field


def test_any_scalar_field_sorts_and_nullable_ones_are_marked() -> None:
    assert WALLETS.sort_fields == WALLETS.filterable
    assert parse_sort(WALLETS, ["-name"]) == (SortKey("name", True, nullable=True), SortKey("id"))
    assert rejected(parse_sort, ENTITIES["workflows"], ["steps"]).details[0].field == "sort[0]"


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


def test_a_nullable_sort_value_travels_in_the_cursor_as_null() -> None:
    req = ListRequest(sort=["name"])
    sort = parse_sort(WALLETS, req.sort)
    cursor = encode_cursor(WALLETS, req, wallet_record(name=None), sort)
    assert decode_cursor(WALLETS, ListRequest(sort=["name"], cursor=cursor), sort) == (None, WALLET_ID)


def test_a_null_in_a_cursor_for_a_not_null_column_is_refused() -> None:
    cursor = tampered(cursor_for(request()), lambda raw: [raw[0], [raw[1][0], None, raw[1][2]]])
    assert rejected(build_query, WALLETS, request(cursor=cursor)).details[0].field == "cursor"


# -- or/and groups, like ------------------------------------------------------------


def test_an_or_group_holds_branches_and_an_and_group_joins_its_members() -> None:
    filters = {
        "status": "active",
        "or": [{"name": {"ilike": "main%"}}, {"balance": {"gte": 5}, "name": {"is_null": True}}],
        "and": [{"version": 1}, {"blockchain_symbol": "ETH"}],
    }
    assert parse_filters(WALLETS, filters) == (
        Condition("status", "eq", "active"),
        AnyOf(
            (
                (Condition("name", "ilike", "main%"),),
                (Condition("balance", "gte", Decimal(5)), Condition("name", "is_null", True)),
            )
        ),
        Condition("version", "eq", 1),
        Condition("blockchain_symbol", "eq", "ETH"),
    )


def nested(depth: int) -> dict:
    filters: dict = {"status": "active"}
    for _ in range(depth):
        filters = {"or": [filters]}
    return filters


def test_groups_nest_up_to_the_limit_and_no_deeper() -> None:
    assert parse_filters(WALLETS, nested(MAX_GROUP_DEPTH))
    error = rejected(parse_filters, WALLETS, nested(MAX_GROUP_DEPTH + 1))
    assert error.details[0].field == "filters" + ".or[0]" * MAX_GROUP_DEPTH + ".or"


def test_a_hostile_number_of_conditions_or_values_is_refused() -> None:
    many = {"or": [{"version": n} for n in range(MAX_CONDITIONS)]}
    assert "at most" in rejected(parse_filters, WALLETS, many).details[0].message
    fine = {"or": [{"version": n} for n in range(MAX_CONDITIONS // 2 - 1)]}
    assert len(parse_filters(WALLETS, fine)[0].branches) == MAX_CONDITIONS // 2 - 1
    half = ["x"] * (MAX_IN_VALUES // 2 + 1)
    error = rejected(parse_filters, WALLETS, {"or": [{"status": {"in": half}}, {"address": {"in": half}}]})
    assert error.details[0].field == "filters.or[1].address.in"
    empties = {"or": [{}] * (MAX_CONDITIONS + 1)}
    assert rejected(parse_filters, WALLETS, empties).details[0].field == "filters.or"


def test_like_patterns_keep_their_escapes_and_text_ids_are_lower_cased() -> None:
    (condition,) = parse_filters(WALLETS, {"name": {"like": "100\\%\\_\\\\%"}})
    assert condition.value == "100\\%\\_\\\\%"
    (condition,) = parse_filters(WALLETS, {"id": {"like": "7F1D%"}})
    assert condition.value == "7f1d%"


# -- select, include, count ---------------------------------------------------------


def test_select_and_include_are_checked_against_the_registry() -> None:
    assert parse_select(WALLETS, None) is None
    assert parse_select(WALLETS, ["balance", "id"]) == ("balance", "id")
    assert rejected(parse_select, WALLETS, ["id", "password_hash"]).details[0].field == "select[1]"
    assert rejected(parse_select, ENTITIES["users"], ["password_hash"]).details[0].field == "select[0]"
    assert rejected(parse_select, WALLETS, ["id", "id"]).details[0].field == "select[1]"
    alerts = ENTITIES["alerts"]
    (include,) = parse_include(alerts, ["wallet"])
    assert include == Include("wallet", alerts.foreign_keys[0])
    assert parse_include(ENTITIES["workflow_executions"], ["workflow"])[0].key.field == "workflow_id"
    assert rejected(parse_include, alerts, ["wallet", "user"]).details[0].field == "include[1]"
    assert rejected(parse_include, WALLETS, ["wallet"]).details[0].field == "include[0]"
    assert rejected(parse_include, alerts, ["wallet", "wallet"]).details[0].field == "include[1]"


def test_every_foreign_key_is_includable_under_its_parents_singular() -> None:
    names = {spec.name: sorted(spec.includes) for spec in ENTITIES.values() if spec.includes}
    assert names == {
        "alerts": ["wallet"],
        "wallet_balances": ["wallet"],
        "alert_rules": ["user"],
        "workflows": ["user"],
        "workflow_executions": ["workflow"],
        "agents": ["user"],
    }


def test_a_plan_carries_select_include_and_count() -> None:
    plan = plan_list(ENTITIES["alerts"], ListRequest(count=True, include=["wallet"], select=["status"]))
    assert (plan.count, plan.select, [i.name for i in plan.includes]) == (True, ("status",), ["wallet"])
    plain = plan_list(WALLETS, ListRequest())
    assert (plain.count, plain.select, plain.includes) == (False, None, ())
