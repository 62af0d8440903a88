"""Field-level rules every entity shares: exact decimals, UTC timestamps, 64-bit integers,
canonical (lower-case) ids. Every value that fits its type but not its column is a
ValidationFailed naming the field, never a database error."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from schema.common import FixedDecimal
from service.model.columns import DEFAULT_DECIMAL, DecimalType, Kind, as_utc
from service.model.errors import invalid
from service.model.registry import EntitySpec

INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # BIGINT
# Strict decimal text: Python's Decimal() also takes " 1 ", "1_000", "NaN", "sNaN" and "Infinity".
# ASCII digits only: Python reads other Unicode digits ("\u0661") as numbers too, JSON Schema does not.
DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
NOT_FINITE_TEXT = re.compile(r"[+-]?(?:s?nan\d*|inf(?:inity)?)", re.IGNORECASE)


def decimal_input_schema(
    integer_digits: int = DEFAULT_DECIMAL.integer_digits, scale: int = DEFAULT_DECIMAL.scale
) -> dict[str, Any]:
    """What a decimal field of a request accepts, as JSON Schema (docs/schemas.json). Every value
    it admits is accepted by to_decimal, except a JSON number with more than `scale` places (JSON
    Schema cannot bound them). Text: at most `integer_digits` digits before the point (leading
    zeros aside) and `scale` after it (trailing zeros aside); exponent text ("1.5e3") is accepted
    too, but whether one fits depends on its value, which no pattern can say."""
    digits, places = integer_digits, scale  # [0-9], not \d: validators may read \d as any Unicode digit
    return {
        "anyOf": [
            {
                "type": "string",
                "pattern": rf"^[+-]?(?:0*[0-9]{{1,{digits}}}(?:\.(?:[0-9]{{1,{places}}}0*)?)?"
                rf"|\.[0-9]{{1,{places}}}0*)$",
            },
            {"type": "number", "exclusiveMinimum": -(10**digits), "exclusiveMaximum": 10**digits},
        ],
        "description": f"exact decimal: a string or a number, at most {places} decimal places, less than"
        f' 10^{digits} in magnitude (also exponent text such as "1.5e3" within those limits)',
    }


DECIMAL_INPUT_SCHEMA = decimal_input_schema()  # DEFAULT_DECIMAL's


# An RFC 3339 timestamp with its offset, as JSON Schema (docs/schemas.json): what replies carry,
# and what requests may send (the service also takes a timestamp without offset, as UTC). The
# lookaheads leave out the instants an offset moves out of years 1 to 9999 (to_utc refuses them);
# `format` leaves out impossible dates (February 30).
TIMESTAMP_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^(?!0000)(?!0001-01-01T[^+]*\+(?!00:00))(?!9999-12-31T.*-(?!00:00)[0-9][0-9]:[0-9][0-9]$)"
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9][0-9]:[0-5][0-9])$",
    "description": "RFC 3339 date and time with offset (Z or ±hh:mm), within years 1 to 9999 in UTC",
}


def check_decimal_text(field: str, text: str) -> None:
    if NOT_FINITE_TEXT.fullmatch(text):
        raise invalid(field, "must be a finite number")
    if not DECIMAL_TEXT.fullmatch(text):
        raise invalid(field, "must be a decimal number")


def to_decimal(
    field: str, value: Any, decimal: DecimalType = DEFAULT_DECIMAL, *, round_excess: bool = False
) -> Decimal:
    """A value of the column's DECIMAL(p,s). Floats go through their shortest repr (0.1 -> 0.1,
    not 0.1000000000000000055)."""
    if isinstance(value, bool):
        raise invalid(field, "must be a decimal number")
    if isinstance(value, str):
        check_decimal_text(field, value)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise invalid(field, "must be a decimal number") from None
    if not number.is_finite():
        raise invalid(field, "must be a finite number")
    # adjusted() reads the exponent without arithmetic: abs() or a comparison of 1e999999999
    # overflows the decimal context.
    if number and number.adjusted() >= decimal.integer_digits:
        raise invalid(field, f"must be less than 10^{decimal.integer_digits} in magnitude")
    # The default context's 28 digits cannot hold DECIMAL(38,18): quantize in one that can.
    quantized = number.quantize(decimal.quantum, context=_CONTEXT)
    if quantized != number and not round_excess:
        raise invalid(field, f"has more than {decimal.scale} decimal places")
    return FixedDecimal(quantized)


_CONTEXT = Context(prec=40)


def to_utc(field: str, value: datetime) -> datetime:
    """Aware UTC; an offset that pushes the instant past year 1 or 9999 is out of range."""
    try:
        return as_utc(value)
    except OverflowError:
        raise invalid(field, "is out of range: the instant in UTC must fall within years 1 to 9999") from None


def check_integer(field: str, value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise invalid(field, "must be between -2^63 and 2^63-1")
    return value


def canonical_id(value: str) -> str:
    """Ids are compared and stored lower-case: a create lower-cases a client's UUID, so
    every other use of an id (get, update, delete, filters, foreign keys) does too."""
    return value.lower()


def normalize(spec: EntitySpec, values: dict[str, Any], *, round_excess: bool = False) -> dict[str, Any]:
    """Decimals to their column's DECIMAL(p,s), timestamps to aware UTC, integers within BIGINT and ids
    lower-case, for the record fields present."""
    out = dict(values)
    for name, value in values.items():
        column = spec.column_map.get(name)
        if column is None or value is None:
            continue
        if column.kind is Kind.DECIMAL:
            out[name] = to_decimal(name, value, column.decimal or DEFAULT_DECIMAL, round_excess=round_excess)
        elif column.kind is Kind.TIMESTAMP and isinstance(value, datetime):
            out[name] = to_utc(name, value)
        elif column.kind is Kind.INTEGER and isinstance(value, int):
            out[name] = check_integer(name, value)
        elif name in spec.id_fields and isinstance(value, str):
            out[name] = canonical_id(value)
    return out
