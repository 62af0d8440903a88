"""What `ekko.search` looks at: one table, per entity the text fields it matches and the
fields its hit's title comes from (the first that is not null).

Checked at import against the registry and the request's `types`: every field is a text
column of the record, never a secret column, and every entity a request may name is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from schema.reports import SearchType
from service.model.columns import Kind
from service.model.registry import ENTITIES

# Scores, best first: the field equals q, starts with q, contains q (case-insensitively).
EXACT, PREFIX, SUBSTRING = 3, 2, 1


@dataclass(frozen=True)
class Searchable:
    entity: str
    fields: tuple[str, ...]  # matched against q
    title: tuple[str, ...]  # the hit's title: the first of these that is not null


SEARCHABLE: tuple[Searchable, ...] = (
    Searchable("wallets", ("name", "address"), ("name", "address")),
    Searchable("alerts", ("message", "type"), ("message",)),
    Searchable("users", ("email", "full_name"), ("full_name", "email")),
    Searchable("alert_rules", ("name", "description"), ("name",)),
    Searchable("workflows", ("name", "description"), ("name",)),
    Searchable("agents", ("name", "type"), ("name",)),  # agents have no description
)
SEARCH_TYPES: tuple[str, ...] = tuple(s.entity for s in SEARCHABLE)  # also the tie-break order of types


class SearchTableError(Exception):
    """SEARCHABLE contradicts the registry or the request schema; raised at import."""


def _check() -> None:
    if set(SEARCH_TYPES) != set(get_args(SearchType)):
        raise SearchTableError(f"SEARCHABLE covers {SEARCH_TYPES}, SearchRequest.types allows {get_args(SearchType)}")
    for item in SEARCHABLE:
        spec = ENTITIES[item.entity]
        for name in (*item.fields, *item.title):
            column = spec.column_map.get(name)
            if column is None or column.kind is not Kind.TEXT or name in spec.secret_columns:
                raise SearchTableError(f"{item.entity}.{name} is not a searchable text field")
        if not any(not spec.column_map[name].nullable for name in item.title):
            raise SearchTableError(f"{item.entity}: the title needs a field that is never null")


_check()
