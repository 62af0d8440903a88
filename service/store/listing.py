"""Turn a list request into a ListQuery, checking every field name against the
entity's own lists, and keyset cursors into and out of opaque strings."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import msgspec

from schema.common import ListRequest, encode
from service.model.columns import DEFAULT_DECIMAL, Column, Kind, strip_optional, to_db
from service.model.errors import ValidationFailed, invalid
from service.model.registry import EntitySpec
from service.model.values import canonical_id, check_integer, to_decimal, to_utc
from service.store.repository import Condition, ListQuery, SortKey

OPERATORS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "is_null"})
_ORDERED = {"gt", "gte", "lt", "lte"}


def _coerce(spec: EntitySpec, column: Column, field: str, value: Any) -> Any:
    """A filter or cursor value as the column's DuckDB parameter, with the same rules as a
    stored value: a value the column cannot hold (NaN, 10^40, year 0) is a 400, never a
    comparison that fails in DuckDB or matches every row."""
    if value is None:
        raise invalid(field, 'use {"is_null": true} to match null')
    if column.kind is Kind.DECIMAL:
        return to_decimal(field, value, column.decimal or DEFAULT_DECIMAL)
    inner, _ = strip_optional(column.python_type)
    try:
        converted = msgspec.convert(value, inner, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid(field, str(exc)) from None
    if column.kind is Kind.INTEGER:
        check_integer(field, converted)
    elif column.kind is Kind.TIMESTAMP:
        converted = to_utc(field, converted)
    elif column.name in spec.id_fields:
        converted = canonical_id(converted)
    return to_db(column, converted)


def _condition(spec: EntitySpec, field: str, op: str, value: Any) -> Condition:
    column = spec.column_map[field]
    if op not in OPERATORS:
        raise invalid(f"filters.{field}", f"unknown operator {op!r} (use one of {', '.join(sorted(OPERATORS))})")
    if op == "is_null":
        if not isinstance(value, bool):
            raise invalid(f"filters.{field}.is_null", "must be true or false")
        return Condition(field, op, value)
    if op == "in":
        if not isinstance(value, list) or len(value) > 1000:
            raise invalid(f"filters.{field}.in", "must be a list of at most 1000 values")
        return Condition(field, op, tuple(_coerce(spec, column, f"filters.{field}.in", v) for v in value))
    if op == "contains" and column.kind is not Kind.TEXT:
        raise invalid(f"filters.{field}.contains", "only text fields support contains")
    if op in _ORDERED and column.kind is Kind.BOOLEAN:
        raise invalid(f"filters.{field}.{op}", "booleans support eq, ne, in and is_null")
    return Condition(field, op, _coerce(spec, column, f"filters.{field}.{op}", value))


def parse_filters(spec: EntitySpec, filters: dict[str, Any]) -> tuple[Condition, ...]:
    conditions: list[Condition] = []
    for field, spec_value in filters.items():
        if field not in spec.filterable:
            raise invalid(f"filters.{field}", f"unknown field (filterable: {', '.join(sorted(spec.filterable))})")
        if isinstance(spec_value, dict):
            if not spec_value:
                raise invalid(f"filters.{field}", "an operator object needs at least one operator")
            conditions.extend(_condition(spec, field, op, v) for op, v in spec_value.items())
        else:
            conditions.append(_condition(spec, field, "eq", spec_value))
    return tuple(conditions)


def parse_sort(spec: EntitySpec, sort: list[str]) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in sort:
        descending = item.startswith("-")
        field = item[1:] if descending else item
        if field not in spec.sort_fields:
            raise invalid("sort", f"cannot sort by {field!r} (allowed: {', '.join(sorted(spec.sort_fields))})")
        if any(k.column == field for k in keys):
            raise invalid("sort", f"{field!r} appears twice")
        keys.append(SortKey(field, descending))
    if not any(k.column == "id" for k in keys):
        keys.append(SortKey("id"))  # a total order, so keyset pages never skip or repeat rows
    return tuple(keys)


def _fingerprint(spec: EntitySpec, request: ListRequest) -> str:
    canonical = msgspec.json.encode([spec.name, request.filters, request.sort], order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(spec: EntitySpec, request: ListRequest, last: msgspec.Struct, sort: tuple[SortKey, ...]) -> str:
    values = [getattr(last, k.column) for k in sort]
    raw = encode([_fingerprint(spec, request), values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(spec: EntitySpec, request: ListRequest, sort: tuple[SortKey, ...]) -> tuple[Any, ...] | None:
    if request.cursor is None:
        return None
    bad = ValidationFailed("cursor: not a cursor from this list request", [])
    try:
        raw = base64.urlsafe_b64decode(request.cursor + "=" * (-len(request.cursor) % 4))
        fingerprint, values = msgspec.json.decode(raw, type=tuple[str, list[Any]])
    except (ValueError, msgspec.DecodeError):
        raise bad from None
    if fingerprint != _fingerprint(spec, request) or len(values) != len(sort):
        raise invalid("cursor", "does not belong to these filters and sort; start again without a cursor")
    return tuple(_coerce(spec, spec.column_map[k.column], "cursor", v) for k, v in zip(sort, values, strict=True))


def build_query(spec: EntitySpec, request: ListRequest) -> ListQuery:
    sort = parse_sort(spec, request.sort)
    return ListQuery(
        conditions=parse_filters(spec, request.filters),
        sort=sort,
        limit=request.limit,
        after=decode_cursor(spec, request, sort),
    )
