"""service.model.values: exact DECIMAL(24,8) values and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from service.model.errors import ValidationFailed
from service.model.registry import ENTITIES
from service.model.values import normalize, to_decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.10000000")),  # the float's shortest repr, not 0.1000000000000000055...
        ("0.1", Decimal("0.10000000")),
        (Decimal("0.1"), Decimal("0.10000000")),
        (7, Decimal("7.00000000")),
        ("12345678.12345678", Decimal("12345678.12345678")),
        ("-0.00000001", Decimal("-0.00000001")),
        ("9999999999999999.99999999", Decimal("9999999999999999.99999999")),
        ("1.50000000000", Decimal("1.50000000")),  # trailing zeros are not extra places
    ],
)
def test_a_decimal_keeps_its_exact_value_at_eight_places(value: object, expected: Decimal) -> None:
    result = to_decimal("balance", value)
    assert result == expected
    assert result.as_tuple().exponent == -8


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.123456789", "has more than 8 decimal places"),
        (1e-9, "has more than 8 decimal places"),
        ("1e16", "must be less than 10^16 in magnitude"),
        ("-10000000000000000", "must be less than 10^16 in magnitude"),
        ("NaN", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        ("lots", "must be a decimal number"),
        (None, "must be a decimal number"),
        ([1], "must be a decimal number"),
    ],
)
def test_a_decimal_that_does_not_fit_names_the_field(value: object, message: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        to_decimal("balance", value)
    assert raised.value.message == f"balance: {message}"
    assert [(d.field, d.message) for d in raised.value.details] == [("balance", message)]


def test_extra_places_can_be_rounded_when_asked() -> None:
    assert to_decimal("balance", "0.123456789", round_excess=True) == Decimal("0.12345679")


def test_normalize_fixes_decimals_and_timestamps_and_leaves_the_rest() -> None:
    spec = ENTITIES["wallet_balances"]
    two_hours_east = timezone(timedelta(hours=2))
    values = {
        "balance": 1.5,
        "token_price": None,
        "timestamp": datetime(2024, 1, 1, 12, 0, tzinfo=two_hours_east),
        "wallet_id": "w",
        "not_a_column": 0.1,
    }
    result = normalize(spec, values)
    assert result["balance"] == Decimal("1.50000000")
    assert result["token_price"] is None
    assert result["timestamp"] == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert result["timestamp"].tzinfo is UTC
    assert result["wallet_id"] == "w" and result["not_a_column"] == 0.1
    assert values["balance"] == 1.5, "the input is not modified"


def test_a_naive_timestamp_is_taken_as_utc() -> None:
    result = normalize(ENTITIES["agents"], {"last_run": datetime(2024, 5, 1, 8, 30)})
    assert result["last_run"] == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


def test_normalize_reports_the_decimal_field_at_fault() -> None:
    with pytest.raises(ValidationFailed) as raised:
        normalize(ENTITIES["agents"], {"max_budget": "0.000000001"})
    assert raised.value.details[0].field == "max_budget"
