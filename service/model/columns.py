"""How a Struct field is stored in DuckDB and read back.

The entity's record Struct is the single list of its columns; this module
derives each column's kind from the field's type and converts values at the
DuckDB boundary (timestamps are stored as naive UTC, JSON as text).
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from schema.common import FixedDecimal


class Kind(enum.Enum):
    TEXT = "VARCHAR"
    INTEGER = "BIGINT"
    BOOLEAN = "BOOLEAN"
    DECIMAL = "DECIMAL"  # precision and scale are the field's: Column.decimal
    TIMESTAMP = "TIMESTAMP"
    JSON = "JSON"


@dataclass(frozen=True)
class DecimalType:
    """DECIMAL(precision, scale): `scale` digits after the point, `precision - scale` before."""

    precision: int
    scale: int

    @property
    def sql(self) -> str:
        return f"DECIMAL({self.precision},{self.scale})"

    # Cached: every decimal checked asks (an ingest of 5,000 rows, 15,000 times).
    @functools.cached_property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.scale)

    @functools.cached_property
    def integer_digits(self) -> int:
        return self.precision - self.scale


# A Decimal field without its own precision (schema.common.decimal_type) is DECIMAL(24,8).
DEFAULT_DECIMAL = DecimalType(24, 8)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool
    python_type: Any
    decimal: DecimalType | None = None  # set for Kind.DECIMAL

    @property
    def scalar(self) -> bool:
        return self.kind is not Kind.JSON

    @property
    def sql_type(self) -> str:
        return self.decimal.sql if self.decimal is not None else self.kind.value


_SCALARS = {str: Kind.TEXT, int: Kind.INTEGER, bool: Kind.BOOLEAN, Decimal: Kind.DECIMAL, datetime: Kind.TIMESTAMP}


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner, _ = strip_optional(args[0]) if len(args) == 1 else (tp, True)
        return inner, len(args) != len(typing.get_args(tp))
    return tp, tp is Any


def decimal_of(tp: Any) -> DecimalType:
    """The precision a Decimal field declares through its msgspec Meta (schema.common.decimal_type)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next((decimal_of(a) for a in typing.get_args(tp) if a is not type(None)), DEFAULT_DECIMAL)
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.extra and "decimal" in meta.extra:
                precision, scale = meta.extra["decimal"]
                return DecimalType(precision, scale)
    return DEFAULT_DECIMAL


def columns_of(record: type[msgspec.Struct]) -> tuple[Column, ...]:
    cols = []
    for f in msgspec.structs.fields(record):
        inner, nullable = strip_optional(f.type)
        kind = _SCALARS.get(inner, Kind.JSON)
        cols.append(Column(f.name, kind, nullable, f.type, decimal_of(f.type) if kind is Kind.DECIMAL else None))
    return tuple(cols)


def to_db(column: Column, value: Any) -> Any:
    """A Python value as a DuckDB parameter for this column."""
    if value is None:
        return None
    if column.kind is Kind.TIMESTAMP:
        return naive_utc(value)
    if column.kind is Kind.JSON:
        return msgspec.json.encode(value).decode()
    return value


def from_db(column: Column, value: Any) -> Any:
    """A DuckDB result value as the record field's Python value."""
    convert = record_value(column)
    return value if value is None or convert is None else convert(value)


def record_value(column: Column) -> Callable[[Any], Any] | None:
    """What turns the column's DuckDB value into the record field's value (None: the value
    as it comes). Chosen once per column, so a row costs one call per converted value."""
    if column.kind is Kind.TIMESTAMP:
        return _aware_utc
    if column.kind is Kind.JSON:
        return functools.partial(msgspec.json.decode, type=column.python_type)
    if column.kind is Kind.DECIMAL:
        return FixedDecimal
    return None


def reply_value(column: Column) -> Callable[[Any], Any] | None:
    """What turns the column's DuckDB value into one the reply encoder writes exactly as it
    writes the record field (None: the value as it comes): a decimal straight to its
    fixed-point text, which is what FixedDecimal becomes in the encoder anyway."""
    return _fixed_point if column.kind is Kind.DECIMAL else record_value(column)


def _aware_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _fixed_point(value: Decimal) -> str:
    return format(value, "f")


def as_utc(value: datetime) -> datetime:
    """Naive timestamps are UTC (the legacy API wrote naive UTC-less strings)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive_utc(value: datetime) -> datetime:
    """The instant as a TIMESTAMP column holds it: UTC, without an offset (naive input is UTC)."""
    return as_utc(value).replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(UTC)
