"""What a list request may say, per entity: the operator table (which filter operators each
kind of column takes) and the exact shapes of `<entity>.list` requests and replies.

service.store.listing validates filters with OPERATORS; the same table types each entity's
filters in its `<Record>ListRequest` (the JSON Schema in docs/schemas.json), so the
published schema and the validation cannot drift apart. The typed Structs decode exactly
as ListRequest does: the filter schema is attached as `extra_json_schema` only.
"""

from __future__ import annotations

import functools
import types
from typing import Annotated, Any

import msgspec

from schema.common import ListReply, ListRequest
from service.model.columns import Column, Kind
from service.model.registry import EntitySpec
from service.model.values import DECIMAL_INPUT_SCHEMA, INT_MAX, INT_MIN, TIMESTAMP_SCHEMA, decimal_input_schema

# Every filter operator and the column kinds it accepts: the one table filter validation
# (service.store.listing) and the JSON Schema of filters read. JSON columns are not filterable.
_SCALAR_KINDS = frozenset(Kind) - {Kind.JSON}
_ORDERED_KINDS = _SCALAR_KINDS - {Kind.BOOLEAN}
_TEXT_KINDS = frozenset({Kind.TEXT})
OPERATORS: dict[str, frozenset[Kind]] = {
    "eq": _SCALAR_KINDS,
    "ne": _SCALAR_KINDS,
    "gt": _ORDERED_KINDS,
    "gte": _ORDERED_KINDS,
    "lt": _ORDERED_KINDS,
    "lte": _ORDERED_KINDS,
    "in": _SCALAR_KINDS,
    "is_null": _SCALAR_KINDS,
    "contains": _TEXT_KINDS,  # substring, case-insensitive, no wildcards
    "like": _TEXT_KINDS,  # % any run, _ one character, \ escapes the next %, _ or \
    "ilike": _TEXT_KINDS,  # like, ignoring case
}
# Keys of a filters object that hold a list of filters objects instead of naming a field.
GROUPS = ("or", "and")
# Bounds on one request's filters, so a hostile request cannot build a huge SQL statement:
MAX_GROUP_DEPTH = 3  # groups inside groups inside groups, no deeper
MAX_CONDITIONS = 100  # operators plus group members, over the whole request
MAX_IN_VALUES = 1000  # values of every `in` list together


def operators_of(kind: Kind) -> tuple[str, ...]:
    """The operators a column of this kind takes, in the table's order."""
    return tuple(op for op, kinds in OPERATORS.items() if kind in kinds)


# The JSON value a filter on a column of this kind takes (null never: `{"is_null": true}`).
# The service also converts a few looser forms (numeric text for integers, a Unix time for
# timestamps); the schema lists the canonical ones, so what it accepts is always accepted.
FILTER_VALUE_SCHEMAS: dict[Kind, dict[str, Any]] = {
    Kind.TEXT: {"type": "string"},
    Kind.INTEGER: {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
    Kind.DECIMAL: DECIMAL_INPUT_SCHEMA,
    Kind.TIMESTAMP: TIMESTAMP_SCHEMA,
    Kind.BOOLEAN: {"type": "boolean"},
}


def operand_schema(column: Column, op: str) -> dict[str, Any]:
    kind = column.kind
    value = FILTER_VALUE_SCHEMAS[kind]
    if column.decimal is not None:  # the field's own DECIMAL(p,s)
        value = decimal_input_schema(column.decimal.integer_digits, column.decimal.scale)
    if op == "is_null":
        return {"type": "boolean"}
    if op == "in":
        return {"type": "array", "items": value, "maxItems": MAX_IN_VALUES}
    if op in ("like", "ilike"):  # \ escapes only %, _ and itself (service.store.listing)
        return {"type": "string", "pattern": r"^(?:[^\\]|\\[%_\\])*$"}
    return value


def filters_schema(spec: EntitySpec) -> dict[str, Any]:
    """`filters` of one entity: each filterable field takes a value (equals) or an object of
    the operators its kind allows; `or`/`and` groups hold filters objects of the same shape.
    The members are not typed again: unrolled to MAX_GROUP_DEPTH the schema would repeat every
    field fifteen times; the service checks them exactly as the top level."""
    fields: dict[str, Any] = {}
    for column in spec.columns:
        if column.name not in spec.filterable:
            continue
        operators = {op: operand_schema(column, op) for op in operators_of(column.kind)}
        by_operator = {"type": "object", "properties": operators, "additionalProperties": False, "minProperties": 1}
        fields[column.name] = {"anyOf": [operand_schema(column, "eq"), by_operator]}
    member = {
        "type": "object",
        "description": f"a filters object like this one; groups nest at most {MAX_GROUP_DEPTH} deep",
    }
    for group in GROUPS:
        fields[group] = {"type": "array", "items": member, "minItems": 1, "maxItems": MAX_CONDITIONS}
    return {"type": "object", "properties": fields, "additionalProperties": False}


def sort_schema(spec: EntitySpec) -> dict[str, Any]:
    keys = sorted(spec.sort_fields)
    return {
        "type": "array",
        "items": {"type": "string", "enum": [*keys, *(f"-{k}" for k in keys)]},
        "uniqueItems": True,
        "description": "fields to sort by, `-` for descending; each field at most once",
    }


_LIST_REQUESTS: dict[int, tuple[EntitySpec, type[ListRequest]]] = {}  # id(spec): a spec holds dicts, no hash


def list_request_of(spec: EntitySpec) -> type[ListRequest]:
    """`<Record>ListRequest`: ListRequest with this entity's filters and sort keys typed (one per spec)."""
    if (made := _LIST_REQUESTS.get(id(spec))) is not None and made[0] is spec:
        return made[1]
    typed = msgspec.defstruct(
        f"{spec.record.__name__}ListRequest",
        [
            ("filters", Annotated[dict[str, Any], msgspec.Meta(extra_json_schema=filters_schema(spec))], {}),
            ("sort", Annotated[list[str], msgspec.Meta(extra_json_schema=sort_schema(spec))], []),
        ],
        bases=(ListRequest,),
        module=__name__,
    )
    assert issubclass(typed, ListRequest)
    _LIST_REQUESTS[id(spec)] = (spec, typed)
    return typed


@functools.cache
def page_of(record: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """`<Record>Page`: ListReply with `items` typed as this entity's records (ListReply says Any)."""
    fields = [
        (f.name, types.GenericAlias(list, (record,)) if f.name == "items" else f.type)
        if f.required
        else (f.name, f.type, f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory())
        for f in msgspec.structs.fields(ListReply)
    ]
    return msgspec.defstruct(f"{record.__name__}Page", fields, module=__name__)
