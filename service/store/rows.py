"""DuckDB rows of an entity's columns as its record, or straight as the record's reply bytes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

import msgspec
from typing_extensions import TypeVar

from schema.common import Record, encode
from service.model.columns import record_value, reply_value
from service.model.registry import EntitySpec

# The entity's record Struct; a bare `Repository` holds any entity's records.
RecordT = TypeVar("RecordT", bound=Record, default=Record)


@dataclass(frozen=True)
class EncodedRows(Generic[RecordT]):
    """Rows as reply bytes, and the DuckDB row behind each, for the few records still needed."""

    spec: EntitySpec[RecordT]
    items: list[bytes]
    rows: list[tuple[Any, ...]]

    def record(self, index: int) -> RecordT:
        return row_record(self.spec, self.rows[index])


@dataclass(frozen=True)
class _RowEncoding:
    struct: type[msgspec.Struct]  # the record's fields, in its order, positional and untyped
    convert: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, conversion) of the values to convert


_ROW_ENCODINGS: dict[str, _RowEncoding] = {}
# Per entity: (field name, conversion or None) of each column, for row_record.
_RECORD_CONVERSIONS: dict[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def row_record(spec: EntitySpec[RecordT], row: Sequence[Any]) -> RecordT:
    """A DuckDB row of the record's columns as the record."""
    conversions = _RECORD_CONVERSIONS.get(spec.name)
    if conversions is None:
        conversions = _RECORD_CONVERSIONS[spec.name] = tuple((c.name, record_value(c)) for c in spec.columns)
    return spec.record(
        **{name: v if f is None or v is None else f(v) for (name, f), v in zip(conversions, row, strict=False)}
    )


def encode_row(spec: EntitySpec, row: Sequence[Any]) -> bytes:
    """A DuckDB row of the record's columns as the bytes `encode(record)` gives.

    The encoder writes a Struct's fields in order by name and value only, so a Struct with
    the record's field names in its order writes the same JSON; the values need only the
    conversions the encoder cannot do (service.model.columns.reply_value)."""
    encoding = _ROW_ENCODINGS.get(spec.name)
    if encoding is None:
        struct = msgspec.defstruct(f"{spec.record.__name__}Row", [(c.name, Any) for c in spec.columns])
        converters = ((i, reply_value(c)) for i, c in enumerate(spec.columns))
        encoding = _ROW_ENCODINGS[spec.name] = _RowEncoding(struct, tuple((i, f) for i, f in converters if f))
    values = list(row)
    for i, convert in encoding.convert:
        if values[i] is not None:
            values[i] = convert(values[i])
    return encode(encoding.struct(*values))
