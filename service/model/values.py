"""Field-level rules every entity shares: exact decimals and UTC timestamps."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from schema.common import FixedDecimal
from service.model.columns import Kind, as_utc
from service.model.errors import invalid
from service.model.registry import EntitySpec

SCALE = Decimal("0.00000001")  # DECIMAL(24,8)
LIMIT = Decimal(10) ** 16


def to_decimal(field: str, value: Any, *, round_excess: bool = False) -> Decimal:
    """A DECIMAL(24,8) value. Floats go through their shortest repr (0.1 -> 0.1, not 0.1000000000000000055)."""
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise invalid(field, "must be a decimal number") from None
    if not number.is_finite():
        raise invalid(field, "must be a finite number")
    if abs(number) >= LIMIT:
        raise invalid(field, "must be less than 10^16 in magnitude")
    quantized = number.quantize(SCALE)
    if quantized != number and not round_excess:
        raise invalid(field, "has more than 8 decimal places")
    return FixedDecimal(quantized)


def normalize(spec: EntitySpec, values: dict[str, Any], *, round_excess: bool = False) -> dict[str, Any]:
    """Decimals to DECIMAL(24,8), timestamps to aware UTC, for the record fields present."""
    out = dict(values)
    for name, value in values.items():
        column = spec.column_map.get(name)
        if column is None or value is None:
            continue
        if column.kind is Kind.DECIMAL:
            out[name] = to_decimal(name, value, round_excess=round_excess)
        elif column.kind is Kind.TIMESTAMP and isinstance(value, datetime):
            out[name] = as_utc(value)
    return out
