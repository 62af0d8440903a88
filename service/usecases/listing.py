"""One page of `ekko.<entity>.list`: the rows, their included parents and the total read in
one snapshot, each item shaped by `select`/`include`, the page cut to fit one reply."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from schema.common import UNSET, ListReply, ListRequest, Record, encode
from service.model.limits import ENVELOPE_RESERVE, PayloadLimit, too_large
from service.model.registry import ENTITIES, EntitySpec
from service.store.database import Database, in_one_snapshot
from service.store.listing import Include, ListPlan, encode_cursor, plan_list
from service.store.repository import ListQuery, Repository
from service.store.sql import Cursor, count_rows
from service.usecases.page_spans import PageSpans, read_within

# The list reply without items: `{"items":[],"next_cursor":""}` plus the quotes of a cursor.
_EMPTY_PAGE = b'{"items":[],"next_cursor":""}'
_TOTAL_KEY = b',"total":'

Parents = dict[str, dict[str, msgspec.Raw]]  # include name -> parent id -> the parent's reply bytes

# Parents joined into the page's statement when their table has at most this many rows: the
# hash join scans the parent table, which costs less than a second statement's index lookups
# below ~30,000 rows (measured: -1.1 ms at 10,000 wallets, -0.8 at 20,000, even at 30,000,
# +0.6 at 50,000; decision 56).
JOIN_PARENTS_UP_TO = 25_000
_SIZES_FOR = 10.0  # seconds a table's row count is trusted


class ParentSizes:
    """Row counts of the parent tables, read at most every _SIZES_FOR seconds (a count costs
    ~0.3 ms, a sixth of what the join saves). Any pool thread; a race only reads twice."""

    def __init__(self, up_to: int = JOIN_PARENTS_UP_TO) -> None:
        self.up_to = up_to
        self._rows: dict[str, tuple[int, float]] = {}

    def all_small(self, cur: Cursor, tables: Sequence[str]) -> bool:
        return bool(tables) and all(self._count(cur, t) <= self.up_to for t in tables)

    def _count(self, cur: Cursor, table: str) -> int:
        now = time.monotonic()
        known = self._rows.get(table)
        if known is None or now - known[1] > _SIZES_FOR:
            known = (count_rows(cur, table), now)
            self._rows[table] = known
        return known[0]


PARENT_SIZES = ParentSizes()


@dataclasses.dataclass(frozen=True)
class _Read:
    items: list[bytes]  # the page's items, encoded
    found: int  # rows read: the page's, plus one when a next page exists
    record: Callable[[int], Record]  # the record of row i, for the cursor
    total: int | None


def _read(spec: EntitySpec, plan: ListPlan, bound: datetime | None, cur: Cursor) -> _Read:
    """The page plus one row (it tells whether a next page exists), one query per include
    for the parents of the whole page, and the total when asked for. Whole records are
    encoded from the rows directly (Repository.list_encoded): no record per row is built;
    such a page is read within `bound` first (page_spans.read_within)."""
    query = dataclasses.replace(plan.query, limit=plan.query.limit + 1)
    total = Repository(spec, cur).count_where(query.conditions) if plan.count else None
    if plan.select is None and not plan.includes:
        page = read_within(Repository(spec, cur).list_encoded, query, bound)
        return _Read(page.items[: plan.query.limit], len(page.rows), page.record, total)
    if plan.select is None and PARENT_SIZES.all_small(cur, [i.key.parent for i in plan.includes]):
        return _joined(spec, plan, query, total, cur)  # whole records with their parents, in one statement
    if plan.select is None:  # whole records with their parents: spliced bytes, no record per row
        page = Repository(spec, cur).list_encoded(query)
        included = _included(spec, plan, page.rows[: plan.query.limit], cur)
        keys = _include_keys(plan)
        items = [
            _spliced(item, keys, parents)
            for item, parents in zip(page.items[: plan.query.limit], included, strict=True)
        ]
        return _Read(items, len(page.rows), page.record, total)
    rows = Repository(spec, cur).list(query)
    parents: Parents = {}
    for include in plan.includes:
        found = _parents(include, (getattr(row, include.key.field) for row in rows[: query.limit]), cur)
        parents[include.name] = {i: msgspec.Raw(data) for i, data in found.items()}
    items = [_item(plan.select, plan.includes, row, parents) for row in rows[: plan.query.limit]]
    return _Read(items, len(rows), rows.__getitem__, total)


def _joined(spec: EntitySpec, plan: ListPlan, query: ListQuery, total: int | None, cur: Cursor) -> _Read:
    """Whole records with their parents read in the page's statement (decision 56), spliced
    as the parents fetched by id are (`_spliced`)."""
    joined = [(i.key.field, ENTITIES[i.key.parent]) for i in plan.includes]
    page, found = Repository(spec, cur).list_joined_encoded(query, joined)
    keys = _include_keys(plan)
    items = [
        _spliced(item, keys, parents) for item, parents in zip(page.items[: plan.query.limit], found, strict=False)
    ]
    return _Read(items, len(page.rows), page.record, total)


def _parents(include: Include, keys: Iterable[str | None], cur: Cursor) -> dict[str, bytes]:
    """Parent id -> reply bytes of the parents these keys name (nulls and missing ones left
    out): one query for the whole page."""
    return Repository(ENTITIES[include.key.parent], cur).get_many_encoded({k for k in keys if k is not None})


def _included(
    spec: EntitySpec, plan: ListPlan, rows: Sequence[tuple[Any, ...]], cur: Cursor
) -> list[list[bytes | None]]:
    """Per row, each include's parent bytes, in order (None: the key is null, or the parent
    was deleted without its children): one query per include for the parents of the page."""
    columns = [c.name for c in spec.columns]
    parts: list[list[bytes | None]] = [[] for _ in rows]
    for include in plan.includes:
        position = columns.index(include.key.field)
        found = _parents(include, (row[position] for row in rows), cur)
        for part, row in zip(parts, rows, strict=True):
            part.append(found.get(row[position]))
    return parts


def _include_keys(plan: ListPlan) -> list[bytes]:
    """`,"<include>":` for each include, in order."""
    return [b',"' + include.name.encode() + b'":' for include in plan.includes]


def _spliced(item: bytes, keys: Sequence[bytes], parents: Sequence[bytes | None]) -> bytes:
    """A record's bytes with its parents (null for None) after its last field, as encoding the
    record's fields and then the includes as one object writes them."""
    spliced = b"".join(key + (b"null" if parent is None else parent) for key, parent in zip(keys, parents, strict=True))
    return item[:-1] + spliced + b"}"


def _item(select: Sequence[str], includes: Sequence[Include], row: Record, parents: Parents) -> bytes:
    """A page item of the selected fields and the included parents, as one object."""
    fields: dict[str, Any] = {name: getattr(row, name) for name in select}
    for include in includes:
        parent_id = getattr(row, include.key.field)
        # null when the key is null, or the parent was deleted without its children
        fields[include.name] = None if parent_id is None else parents[include.name].get(parent_id)
    return encode(fields)


def _fitting(items: Sequence[bytes], budget: int, size: int) -> tuple[int, int]:
    """(how many leading items fit in budget, the reply size with them), starting from size."""
    count = 0
    for item in items:
        if size + len(item) + 1 > budget:
            break
        size, count = size + len(item) + 1, count + 1
    return count, size


async def list_page(
    spec: EntitySpec, db: Database, limit: PayloadLimit, request: ListRequest, spans: PageSpans | None = None
) -> ListReply:
    """A page of at most `limit` rows that also fits in one reply: it stops before the row
    that would go over max_payload, and next_cursor continues from the last row sent.
    `spans`: how far the list's last pages reached, to bound the next (service.usecases.page_spans)."""
    plan = plan_list(spec, request)
    several = plan.count or bool(plan.includes)  # more than one statement: one snapshot for all
    key, bound = (b"", None) if spans is None else spans.hint(spec, plan, request)

    def read(cur: Cursor) -> _Read:
        return _read(spec, plan, bound, cur)

    result = await db.read(in_one_snapshot(read) if several else read)
    if key and spans is not None and result.found > plan.query.limit:  # a full page: learn how far it reached
        column = plan.query.sort[0].column
        first, last = getattr(result.record(0), column), getattr(result.record(result.found - 1), column)
        spans.learn(key, plan.query, first, last)
    items = result.items
    budget = limit.max_payload - ENVELOPE_RESERVE
    start = len(_EMPTY_PAGE) + (0 if result.total is None else len(_TOTAL_KEY) + len(str(result.total)))
    count, size = _fitting(items, budget, start)
    if count == 0 and items:
        # One row alone is too large for a reply (stored before max_payload was lowered):
        # name it, rather than return an empty page whose cursor goes nowhere.
        raise too_large(f"{spec.name} {result.record(0).id} in a list reply", len(items[0]) + size, budget)
    next_cursor = None
    if count < result.found:
        next_cursor = encode_cursor(spec, request, result.record(count - 1), plan.query.sort)
        while count > 1 and size + len(next_cursor) > budget:  # the cursor must fit too
            count -= 1
            size -= len(items[count]) + 1
            next_cursor = encode_cursor(spec, request, result.record(count - 1), plan.query.sort)
    return ListReply(
        items=[msgspec.Raw(item) for item in items[:count]],
        next_cursor=next_cursor,
        total=UNSET if result.total is None else result.total,
    )
