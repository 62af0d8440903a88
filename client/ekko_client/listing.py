"""What a list request may say, typed for callers: filters (groups included), sort, select,
include, count. The service checks every name and value; these types only guide the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias, TypedDict

from .schema.common import ListRequest

Scalar: TypeAlias = str | int | float | bool | Decimal | datetime | None
"""A filter value: money as Decimal (or its text), timestamps as datetime (or ISO text)."""

Operators: TypeAlias = Mapping[str, Scalar | Sequence[Scalar]]
"""`{op: value}`: eq, ne, in (a list), gt, gte, lt, lte, is_null, contains, like, ilike."""

Filters: TypeAlias = Mapping[str, "Scalar | Operators | Sequence[Filters]"]
"""`{field: value}` (equals), `{field: {op: value}}`, and groups `{"or": [Filters, ...]}`,
`{"and": [Filters, ...]}` whose members are filters objects too."""

JsonObject: TypeAlias = dict[str, Any]
Names: TypeAlias = Sequence[str]


class Walk(TypedDict, total=False):
    """Which rows, in which order: what `iter` and every page of it share."""

    filters: Filters | None
    sort: Names | None
    """Field names, `-` for descending; any scalar field."""


class PageOptions(Walk, total=False):
    """One page of `list`."""

    limit: int | None
    """1 to 1000 (the service's default: 50)."""
    cursor: str | None
    """The previous page's `next_cursor`."""
    count: bool
    """Fill `Page.total` with the number of rows matching `filters`."""


def list_request(select: Names | None, include: Names | None, options: PageOptions) -> ListRequest:
    """The request with only what the caller gave: left out, a field keeps the service's
    default."""
    given: dict[str, Any] = {**options, "select": select, "include": include}
    for name in ("sort", "select", "include"):
        if given.get(name) is not None:
            given[name] = list(given[name])
    if given.get("filters") is not None:
        given["filters"] = dict(given["filters"])
    return ListRequest(**{name: value for name, value in given.items() if value is not None})
