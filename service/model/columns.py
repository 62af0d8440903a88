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
from collections.abc import Callable, Sequence
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
    DECIMAL = "DECIMAL(24,8)"
    TIMESTAMP = "TIMESTAMP"
    JSON = "JSON"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool
    python_type: Any

    @property
    def scalar(self) -> bool:
        return self.kind is not Kind.JSON


_SCALARS = {str: Kind.TEXT, int: Kind.INTEGER, bool: Kind.BOOLEAN, Decimal: Kind.DECIMAL, datetime: Kind.TIMESTAMP}


# Kinds whose DuckDB value already is the record's value: no conversion call per value.
_AS_IS = frozenset({Kind.TEXT, Kind.INTEGER, Kind.BOOLEAN})


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner, _ = strip_optional(args[0]) if len(args) == 1 else (tp, True)
        return inner, len(args) != len(typing.get_args(tp))
    return tp, tp is Any


def columns_of(record: type[msgspec.Struct]) -> tuple[Column, ...]:
    cols = []
    for f in msgspec.structs.fields(record):
        inner, nullable = strip_optional(f.type)
        kind = _SCALARS.get(inner, Kind.JSON)
        cols.append(Column(f.name, kind, nullable, f.type))
    return tuple(cols)


def to_db(column: Column, value: Any) -> Any:
    """A Python value as a DuckDB parameter for this column."""
    if value is None:
        return None
    if column.kind is Kind.TIMESTAMP:
        return as_utc(value).replace(tzinfo=None)
    if column.kind is Kind.JSON:
        return msgspec.json.encode(value).decode()
    return value


def from_db(column: Column, value: Any) -> Any:
    """A DuckDB result value as the record field's Python value."""
    if value is None:
        return None
    if column.kind is Kind.TIMESTAMP:
        return value.replace(tzinfo=UTC)
    if column.kind is Kind.JSON:
        return msgspec.json.decode(value, type=column.python_type)
    if column.kind is Kind.DECIMAL:
        return FixedDecimal(value)
    return value


def row_values(columns: Sequence[Column], row: Sequence[Any]) -> dict[str, Any]:
    """A DuckDB result row (columns in record order) as the record's field values."""
    return {c.name: v if v is None or c.kind in _AS_IS else from_db(c, v) for c, v in zip(columns, row, strict=False)}


def reply_value(column: Column) -> Callable[[Any], Any] | None:
    """What turns the column's DuckDB value into one the reply encoder writes exactly as it
    writes the record field (None: the value as it comes): a decimal straight to its
    fixed-point text, which is what FixedDecimal becomes in the encoder anyway."""
    if column.kind is Kind.DECIMAL:
        return _fixed_point
    if column.kind in _AS_IS:
        return None
    return functools.partial(from_db, column)


def _fixed_point(value: Decimal) -> str:
    return format(value, "f")


def as_utc(value: datetime) -> datetime:
    """Naive timestamps are UTC (the legacy API wrote naive UTC-less strings)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
