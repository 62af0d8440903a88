"""Turn a list request into a ListPlan, checking every field name against the
entity's own lists, and keyset cursors into and out of opaque strings."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from schema.common import ListRequest, encode
from service.model.columns import DEFAULT_DECIMAL, Column, Kind, strip_optional, to_db
from service.model.errors import ValidationFailed, invalid
from service.model.queries import GROUPS, MAX_CONDITIONS, MAX_GROUP_DEPTH, MAX_IN_VALUES, OPERATORS
from service.model.registry import EntitySpec, ForeignKey
from service.model.values import canonical_id, check_integer, to_decimal, to_utc
from service.store.repository import AnyOf, Condition, Filter, ListQuery, SortKey


@dataclass(frozen=True)
class Include:
    """A parent record embedded in each item under `name`, found through `key`."""

    name: str
    key: ForeignKey


@dataclass(frozen=True)
class ListPlan:
    query: ListQuery
    select: tuple[str, ...] | None  # None: every field
    includes: tuple[Include, ...]
    count: bool


@dataclass
class _Budget:
    """What a request's filters have used of the bounds above."""

    conditions: int = 0
    in_values: int = 0

    def spend(self, field: str, *, conditions: int = 1, in_values: int = 0) -> None:
        self.conditions += conditions
        self.in_values += in_values
        if self.conditions > MAX_CONDITIONS:
            raise invalid(field, f"filters hold at most {MAX_CONDITIONS} conditions and group members")
        if self.in_values > MAX_IN_VALUES:
            raise invalid(field, f"the `in` lists of a request hold at most {MAX_IN_VALUES} values together")


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


def _check_pattern(field: str, pattern: str) -> None:
    """`\\` escapes only %, _ and itself, so a pattern means the same in DuckDB and in the docs
    (DuckDB refuses a pattern ending in a lone escape with an error, not a 400)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if i + 1 == len(pattern) or pattern[i + 1] not in "%_\\":
                raise invalid(field, "\\ escapes only %, _ and \\ (write \\\\ for a backslash)")
            i += 1
        i += 1


def _condition(spec: EntitySpec, field: str, op: str, value: Any, path: str, budget: _Budget) -> Condition:
    column = spec.column_map[field]
    where = f"{path}.{op}"
    if op not in OPERATORS:
        allowed = ", ".join(o for o, kinds in OPERATORS.items() if column.kind in kinds)
        raise invalid(path, f"unknown operator {op!r} (use one of {allowed})")
    if column.kind not in OPERATORS[op]:
        allowed = ", ".join(o for o, kinds in OPERATORS.items() if column.kind in kinds)
        raise invalid(where, f"{column.kind.name.lower()} fields support {allowed}")
    if op == "is_null":
        if not isinstance(value, bool):
            raise invalid(where, "must be true or false")
        return Condition(field, op, value)
    if op == "in":
        if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
            raise invalid(where, f"must be a list of at most {MAX_IN_VALUES} values")
        budget.spend(where, conditions=0, in_values=len(value))
        return Condition(field, op, tuple(_coerce(spec, column, where, v) for v in value))
    coerced = _coerce(spec, column, where, value)
    if op in ("like", "ilike"):
        _check_pattern(where, coerced)
    return Condition(field, op, coerced)


def _parse_object(spec: EntitySpec, filters: Any, path: str, depth: int, budget: _Budget) -> list[Filter]:
    """The conditions of one filters object, all of which must hold."""
    if not isinstance(filters, dict):
        raise invalid(path, "must be an object of field: value, field: {operator: value} or or/and groups")
    conditions: list[Filter] = []
    for field, value in filters.items():
        where = f"{path}.{field}"
        if field in GROUPS:
            conditions.extend(_parse_group(spec, field, value, where, depth, budget))
        elif field not in spec.filterable:
            raise invalid(where, f"unknown field (filterable: {', '.join(sorted(spec.filterable))})")
        elif isinstance(value, dict):
            if not value:
                raise invalid(where, "an operator object needs at least one operator")
            for op, operand in value.items():
                budget.spend(where)
                conditions.append(_condition(spec, field, op, operand, where, budget))
        else:
            budget.spend(where)
            conditions.append(_condition(spec, field, "eq", value, where, budget))
    return conditions


def _parse_group(spec: EntitySpec, kind: str, members: Any, path: str, depth: int, budget: _Budget) -> list[Filter]:
    if depth > MAX_GROUP_DEPTH:
        raise invalid(path, f"or/and groups nest at most {MAX_GROUP_DEPTH} deep")
    if not isinstance(members, list) or not members:
        raise invalid(path, "must be a non-empty list of filters objects")
    budget.spend(path, conditions=len(members))
    branches = [_parse_object(spec, m, f"{path}[{i}]", depth + 1, budget) for i, m in enumerate(members)]
    if kind == "and":
        return [c for branch in branches for c in branch]
    return [AnyOf(tuple(tuple(branch) for branch in branches))]


def parse_filters(spec: EntitySpec, filters: dict[str, Any]) -> tuple[Filter, ...]:
    return tuple(_parse_object(spec, filters, "filters", 1, _Budget()))


def _names(field: str, names: list[str], allowed: frozenset[str] | dict[str, Any], what: str) -> None:
    """Every name known and none twice; the 400 names `field[i]`."""
    for i, name in enumerate(names):
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise invalid(f"{field}[{i}]", f"unknown {what} {name!r} (allowed: {known})")
        if name in names[:i]:
            raise invalid(f"{field}[{i}]", f"{name!r} appears twice")


def parse_sort(spec: EntitySpec, sort: list[str]) -> tuple[SortKey, ...]:
    descending = [item.startswith("-") for item in sort]
    fields = [item[1:] if desc else item for item, desc in zip(sort, descending, strict=True)]
    _names("sort", fields, spec.sort_fields, "sort field")
    keys = [SortKey(f, desc, spec.column_map[f].nullable) for f, desc in zip(fields, descending, strict=True)]
    if "id" not in fields:
        keys.append(SortKey("id"))  # a total order, so keyset pages never skip or repeat rows
    return tuple(keys)


def parse_select(spec: EntitySpec, select: list[str] | None) -> tuple[str, ...] | None:
    if select is None:
        return None
    _names("select", select, spec.column_map, "field")
    return tuple(select)


def parse_include(spec: EntitySpec, include: list[str]) -> tuple[Include, ...]:
    _names("include", include, spec.includes, "include")
    return tuple(Include(name, spec.includes[name]) for name in include)


def _fingerprint(spec: EntitySpec, request: ListRequest) -> str:
    canonical = msgspec.json.encode([spec.name, request.filters, request.sort], order="sorted")
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(spec: EntitySpec, request: ListRequest, last: msgspec.Struct, sort: tuple[SortKey, ...]) -> str:
    values = [getattr(last, k.column) for k in sort]
    raw = encode([_fingerprint(spec, request), values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_value(spec: EntitySpec, key: SortKey, value: Any) -> Any:
    if value is None and key.nullable:
        return None  # the last row had no value there: NULLs sort after every value
    return _coerce(spec, spec.column_map[key.column], "cursor", value)


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
    return tuple(_cursor_value(spec, k, v) for k, v in zip(sort, values, strict=True))


def build_query(spec: EntitySpec, request: ListRequest) -> ListQuery:
    sort = parse_sort(spec, request.sort)
    return ListQuery(
        conditions=parse_filters(spec, request.filters),
        sort=sort,
        limit=request.limit,
        after=decode_cursor(spec, request, sort),
    )


def plan_list(spec: EntitySpec, request: ListRequest) -> ListPlan:
    """Everything a list request asks for, checked: a 400 naming the field, before any SQL runs."""
    return ListPlan(
        query=build_query(spec, request),
        select=parse_select(spec, request.select),
        includes=parse_include(spec, request.include),
        count=request.count,
    )
