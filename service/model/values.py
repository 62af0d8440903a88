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
DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
NOT_FINITE_TEXT = re.compile(r"[+-]?(?:s?nan\d*|inf(?:inity)?)", re.IGNORECASE)


def check_decimal_text(field: str, text: str) -> None:
    if NOT_FINITE_TEXT.fullmatch(text):
        raise invalid(field, "must be a finite number")
    if not DECIMAL_TEXT.fullmatch(text):
        raise invalid(field, "must be a decimal number")


def check_decimal_texts(spec: EntitySpec, body: Any) -> None:
    """The decimal fields of a create/update body sent as strings, checked as text."""
    if isinstance(body, dict):
        for name in spec.decimal_fields:
            if isinstance(text := body.get(name), str):
                check_decimal_text(name, text)


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
