"""docs/schemas.json says what the service accepts: a decimal or a list filter the published
schema admits is accepted by the service's own checks (service.model.values, service.store.listing),
and for plain decimal text and each field's operators the two agree both ways."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.model.columns import Kind
from service.model.errors import ValidationFailed
from service.model.queries import OPERATORS
from service.model.registry import ENTITIES
from service.model.values import DECIMAL_TEXT, check_decimal_text, to_decimal
from service.store.listing import parse_filters
from tests.support import load_generator, published, schema_errors

DECIMAL = published()["$defs"]["DecimalInput"]
SAMPLES = {
    Kind.TEXT: "active",
    Kind.INTEGER: 3,
    Kind.DECIMAL: "1.5",
    Kind.TIMESTAMP: "2024-01-01T00:00:00Z",
    Kind.BOOLEAN: True,
}


# The field's scale: 8 (money, fiat) or 18 (on-chain amounts).
GAPS = ("has more than 8 decimal places", "has more than 18 decimal places", "Expected `int`, got `float`")


def service_takes_decimal(text: str) -> bool:
    """Whether a decimal field sent as this JSON passes the service: msgspec's typed decode,
    the strict text check of a string, then DECIMAL(24,8)'s limits."""
    try:
        value = msgspec.json.decode(text, type=Decimal)
        raw = msgspec.json.decode(text)
        if isinstance(raw, str):
            check_decimal_text("balance", raw)
        to_decimal("balance", value)
    except (msgspec.ValidationError, msgspec.DecodeError, ValidationFailed):
        return False
    return True


def schema_takes(schema: dict[str, Any], text: str) -> bool:
    return not schema_errors(schema, json.loads(text))


def test_the_documented_examples_of_decimals() -> None:
    for good in ('"12.5"', "11", '"-0.00000001"', '"9999999999999999.99999999"', "1.5", '"000012.50000000000"'):
        assert schema_takes(DECIMAL, good) and service_takes_decimal(good), good
    bad_ones = ('"NaN"', '" 1"', '"1_000"', '"1.000000001"', '"10000000000000000"', "1e16", "true", "null", '""')
    for bad in (*bad_ones, '"\\u0661"'):  # an Arabic-Indic digit one: Python's Decimal reads it
        assert not schema_takes(DECIMAL, bad) and not service_takes_decimal(bad), bad


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.from_regex(DECIMAL_TEXT, fullmatch=True), st.text(max_size=30)))
def test_decimal_text_the_schema_admits_is_accepted_and_plain_text_agrees_both_ways(text: str) -> None:
    body = json.dumps(text)
    if schema_takes(DECIMAL, body):
        assert service_takes_decimal(body), text
    elif "e" not in text.lower():  # exponent text is left out of the pattern: its fit depends on the value
        assert not service_takes_decimal(body), text


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(10**20), max_value=10**20),
        st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**17), max_value=10**17),
    )
)
def test_decimal_numbers_the_schema_admits_are_accepted(number: int | Decimal) -> None:
    text = str(number) if isinstance(number, int) else format(number, "f")
    assert schema_takes(DECIMAL, text) == service_takes_decimal(text), text


def filters_schema(entity: str) -> dict[str, Any]:
    return dict(published()["$defs"][f"{ENTITIES[entity].record.__name__}ListRequest"]["properties"]["filters"])


def service_takes_filters(entity: str, filters: dict[str, Any]) -> bool:
    return filters_refused(entity, filters) is None


def filters_refused(entity: str, filters: dict[str, Any]) -> str | None:
    """Why the service refuses these filters, or None."""
    try:
        parse_filters(ENTITIES[entity], filters)
    except ValidationFailed as exc:
        return exc.message
    return None


def operand(kind: Kind, op: str) -> Any:
    return True if op == "is_null" else [SAMPLES[kind]] if op == "in" else SAMPLES[kind]


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_each_field_takes_exactly_the_operators_of_its_kind(entity: str) -> None:
    spec, schema = ENTITIES[entity], filters_schema(entity)
    assert set(schema["properties"]) == {*spec.filterable, "or", "and"}
    for name in spec.filterable:
        kind = spec.column_map[name].kind
        for op in sorted(OPERATORS):
            filters = {name: {op: operand(kind, op)}}
            allowed = kind in OPERATORS[op]
            assert (not schema_errors(schema, filters)) is allowed, filters
            assert service_takes_filters(entity, filters) is allowed, filters
        assert not schema_errors(schema, {name: SAMPLES[kind]}) and service_takes_filters(entity, {name: SAMPLES[kind]})
    assert schema_errors(schema, {"no_such_field": 1}) and not service_takes_filters(entity, {"no_such_field": 1})


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["1.5", "NaN", "2024-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "x", "1e400", "12345678901234567"]
    ),
    st.text(max_size=8),
)


@st.composite
def filter_bodies(draw: st.DrawFn, entity: str) -> dict[str, Any]:
    fields = sorted(ENTITIES[entity].filterable)
    body = {}
    for name in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        ops = st.dictionaries(st.sampled_from(sorted(OPERATORS)), st.one_of(VALUES, st.lists(VALUES, max_size=3)))
        body[name] = draw(st.one_of(VALUES, ops))
    return body


@pytest.mark.parametrize("entity", ["wallets", "wallet_balances", "users"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_filters_the_schema_admits_are_accepted(entity: str, data: st.DataObject) -> None:
    filters = data.draw(filter_bodies(entity))
    if not schema_errors(filters_schema(entity), filters):
        refused = filters_refused(entity, filters)
        # The documented gaps: JSON Schema cannot bound a number's decimal places, and calls 1.0
        # an integer (msgspec takes a whole float as an integer only up to 2^53).
        assert refused is None or refused.endswith(GAPS), (filters, refused)


class Transfer(msgspec.Struct, forbid_unknown_fields=True):
    amount: Annotated[Decimal, msgspec.Meta(extra={"decimal": (38, 18)})]
    fee: Decimal | None = None
    at: datetime | None = None


class Receipt(msgspec.Struct):
    amount: Annotated[Decimal, msgspec.Meta(extra={"decimal": (38, 18)})]
    at: datetime


def test_a_field_declaring_its_precision_gets_its_own_decimal_schema() -> None:
    _, _, components = load_generator().schemas([Transfer], [Receipt])
    sent, got = components["Transfer"]["properties"], components["Receipt"]["properties"]
    assert sent["amount"] == {"$ref": "#/$defs/DecimalInput38x18"}
    assert sent["fee"]["anyOf"][0] == {"$ref": "#/$defs/DecimalInput"}  # DECIMAL(24,8) by default
    assert sent["at"]["anyOf"][0] == got["at"] == {"$ref": "#/$defs/Timestamp"}
    assert got["amount"]["type"] == "string" and "anyOf" not in got["amount"]  # replies: fixed-point text
    wide = jsonschema.Draft202012Validator(components["DecimalInput38x18"])
    for good in ("0.000000000000000001", "12345678901234567890.5", "-1", 1e19):
        assert wide.is_valid(good), good
    for bad in ("0.0000000000000000001", "123456789012345678901", 1e20, "1.5e3"):
        assert not wide.is_valid(bad), bad
