"""What a list request may say, typed for callers: filters (groups included), sort, select,
include, count. The service checks every name and value; these types only guide the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

from .schema.common import ListRequest

Scalar: TypeAlias = str | int | float | bool | Decimal | datetime | None
"""A filter value: money as Decimal (or its text), timestamps as datetime (or ISO text)."""

Operators: TypeAlias = Mapping[str, Scalar | Sequence[Scalar]]
"""`{op: value}`: eq, ne, in (a list), gt, gte, lt, lte, is_null, contains, like, ilike."""

Filters: TypeAlias = Mapping[str, "Scalar | Operators | Sequence[Filters]"]
"""`{field: value}` (equals), `{field: {op: value}}`, and groups `{"or": [Filters, ...]}`,
`{"and": [Filters, ...]}` whose members are filters objects too."""

JsonObject: TypeAlias = dict[str, Any]


def list_request(
    *,
    filters: Filters | None,
    sort: Sequence[str] | None,
    limit: int | None,
    cursor: str | None,
    count: bool,
    select: Sequence[str] | None,
    include: Sequence[str] | None,
) -> ListRequest:
    """The request with only what the caller gave: left out, a field keeps the service's
    default."""
    given: dict[str, Any] = {
        "filters": None if filters is None else dict(filters),
        "sort": None if sort is None else list(sort),
        "limit": limit,
        "cursor": cursor,
        "count": count or None,
        "select": None if select is None else list(select),
        "include": None if include is None else list(include),
    }
    return ListRequest(**{name: value for name, value in given.items() if value is not None})
