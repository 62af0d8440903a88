"""How far in time the last page of a list reached, so the next one reads only that far.

A per-parent list in time order (`{wallet_id: X}`, sort `-timestamp`) scans the row
group its page lies in, up to 122,880 rows, because DuckDB's zone maps cannot tell one
wallet's rows from another's (docs/decisions.md 33). A bound on the time column lets the
scan skip the rows outside it. The bound comes from the same list's previous page: a
client walking pages asks for the next one from where the last ended, and pages of one
parent span similar times. The bound is only a hint: `read_within` reads the page again
without it when the bounded page is not full, so a stale span costs a second statement,
never a wrong page. `PageSpans.hint` decides whether a list gets a bound, `read_within`
is how a page is read with one: the whole rule is here.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from schema.common import ListRequest
from service.model.columns import Kind, naive_utc
from service.model.registry import EntitySpec
from service.store.listing import ListPlan
from service.store.repository import ListQuery
from service.store.rows import EncodedRows

MARGIN = 2  # the bound lies twice the last page's span away: pages of one parent vary


@dataclass(frozen=True)
class _Span:
    start: datetime  # the first row's time of the list's first page (naive UTC)
    length: timedelta  # between the first and last row of its last full page


class PageSpans:
    """Per list (entity, filters and sort, as bytes), the span of its last full page; at most
    `max_entries` lists, least recently used forgotten first. Used on the event loop only."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._spans: OrderedDict[bytes, _Span] = OrderedDict()

    def hint(self, spec: EntitySpec, plan: ListPlan, request: ListRequest) -> tuple[bytes, datetime | None]:
        """(the list's key, the bound its page is read within first: see read_within). The key is
        empty when the list takes no bound: pages shaped by `select`/`include` (not read by
        read_within), or not in the order of a timestamp (`applies`). The bound is None until
        a full page of the list was learned."""
        if plan.select is not None or plan.includes or not self.applies(spec, plan.query):
            return b"", None
        key = msgspec.json.encode([spec.name, request.filters, request.sort], order="sorted")
        return key, self.bound(key, plan.query)

    @staticmethod
    def applies(spec: EntitySpec, query: ListQuery) -> bool:
        """Only a first sort key that is a timestamp without NULLs: rows beyond a bound on it
        sort after every row within it."""
        column = spec.column_map[query.sort[0].column]
        return column.kind is Kind.TIMESTAMP and not column.nullable

    def bound(self, key: bytes, query: ListQuery) -> datetime | None:
        span = self._spans.get(key)
        if span is None:
            return None
        self._spans.move_to_end(key)
        anchor = span.start if query.after is None else query.after[0]
        reach = MARGIN * span.length
        try:
            return anchor - reach if query.sort[0].descending else anchor + reach
        except OverflowError:  # beyond year 1 or 9999: no bound
            return None

    def learn(self, key: bytes, query: ListQuery, first: datetime, last: datetime) -> None:
        """A full page read from `first` to `last` (its first sort key's values)."""
        first, last = naive_utc(first), naive_utc(last)
        known = self._spans.get(key)
        start = first if query.after is None or known is None else known.start
        self._spans[key] = _Span(start, abs(first - last))
        self._spans.move_to_end(key)
        while len(self._spans) > self.max_entries:
            self._spans.popitem(last=False)


def read_within(read: Callable[[ListQuery], EncodedRows], query: ListQuery, bound: datetime | None) -> EncodedRows:
    """The page of `query` by `read`, first only as far as `bound` on its first sort key (None:
    no bound). Rows beyond the bound sort after every row within it, so a bounded page that
    comes back full is exactly the unbounded page; a short one may lack rows that lie beyond
    the bound, and is read again without it."""
    if bound is not None:
        page = read(dataclasses.replace(query, bound=bound))
        if len(page.rows) == query.limit:
            return page
    return read(query)
