"""A time-ordered list bounded by how far its last page reached returns exactly the pages it
returns unbounded, also when the rows grow sparse, so that the learned bound falls short."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from schema.common import ListReply, ListRequest
from service.model.columns import naive_utc
from service.model.limits import PayloadLimit
from service.model.registry import ENTITIES
from service.store.database import Database
from service.store.listing import plan_list
from service.store.repository import ListQuery, Repository
from service.store.rows import EncodedRows
from service.usecases.listing import list_page
from service.usecases.page_spans import PageSpans, read_within
from tests.history import made_id

WALLETS = 3
# Row i belongs to wallet i % 3; its time grows by 1 s at first, then by i² s: the later pages of
# a wallet span far more time than the early ones, so a bound learned early falls short.
FILL = f"""INSERT INTO wallet_balances (id, created_at, updated_at, version, wallet_id, timestamp, balance)
SELECT md5('b' || i::VARCHAR)::UUID::VARCHAR, TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-01', 1,
    md5('parent' || (i % {WALLETS})::VARCHAR)::UUID::VARCHAR,
    TIMESTAMP '2024-01-01' + to_seconds(CASE WHEN i < 1500 THEN i ELSE i * i END), (i % 7)::DECIMAL(38,18)
FROM range(3000) t(i)"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "ekko.db", 2).open()
    database.connection.execute(FILL)
    yield database
    database.close()


async def walk(db: Database, request: ListRequest, spans: PageSpans | None) -> list[bytes]:
    spec, replies = ENTITIES["wallet_balances"], []
    while True:
        reply = await list_page(spec, db, PayloadLimit(), request, spans)
        replies.append(msgspec.json.encode(reply))
        if reply.next_cursor is None:
            return replies
        request = msgspec.structs.replace(request, cursor=reply.next_cursor)


@pytest.mark.parametrize("sort", ["-timestamp", "timestamp"])
async def test_bounded_pages_are_the_unbounded_pages(db: Database, sort: str) -> None:
    request = ListRequest(filters={"wallet_id": made_id("parent", 1)}, sort=[sort], limit=37)
    spans = PageSpans()
    plain = await walk(db, request, None)
    assert len(plain) == 28  # 1,000 rows of the wallet in pages of 37
    assert await walk(db, request, spans) == plain
    assert await walk(db, request, spans) == plain  # page 1 bounded too, from what was learned
    key = msgspec.json.encode(["wallet_balances", request.filters, request.sort], order="sorted")
    assert spans._spans[key].length.total_seconds() > 0  # it did learn, so the walks were bounded


async def test_lists_not_in_time_order_are_not_bounded(db: Database) -> None:
    spec = ENTITIES["wallet_balances"]
    spans = PageSpans()
    request = ListRequest(filters={"wallet_id": made_id("parent", 2)}, sort=["-balance"], limit=10)
    first = await list_page(spec, db, PayloadLimit(), request, spans)
    assert first == await list_page(spec, db, PayloadLimit(), request, None)
    assert isinstance(first, ListReply) and not spans._spans


def recorded(db: Database) -> tuple[list[ListQuery], Callable[[ListQuery], EncodedRows]]:
    """A page read on the table, and the queries it was asked for."""
    seen: list[ListQuery] = []
    repo = Repository(ENTITIES["wallet_balances"], db.connection)

    def read(query: ListQuery) -> EncodedRows:
        seen.append(query)
        return repo.list_encoded(query)

    return seen, read


def newest_page(sort: str = "-timestamp") -> ListQuery:
    request = ListRequest(filters={"wallet_id": made_id("parent", 1)}, sort=[sort], limit=37)
    return plan_list(ENTITIES["wallet_balances"], request).query


def time_of(page: EncodedRows, row: int) -> datetime:
    return naive_utc(page.record(row).timestamp)


def test_a_bounded_page_that_comes_back_full_is_read_once(db: Database) -> None:
    seen, read = recorded(db)
    query = newest_page()
    unbounded = read(query)
    seen.clear()
    page = read_within(read, query, time_of(unbounded, query.limit - 1))  # the last row lies on it
    assert [q.bound for q in seen] == [time_of(unbounded, query.limit - 1)]
    assert page.items == unbounded.items


@pytest.mark.parametrize("sort", ["-timestamp", "timestamp"])
def test_a_short_bounded_page_is_read_again_without_the_bound(db: Database, sort: str) -> None:
    seen, read = recorded(db)
    query = newest_page(sort)
    unbounded = read(query)
    seen.clear()
    page = read_within(read, query, time_of(unbounded, 10))  # rows 11.. lie beyond it
    assert [q.bound for q in seen] == [time_of(unbounded, 10), None]
    assert page.items == unbounded.items and len(page.rows) == query.limit


def test_without_a_bound_the_page_is_read_once_as_asked(db: Database) -> None:
    seen, read = recorded(db)
    query = newest_page()
    assert read_within(read, query, None).items == read(query).items
    assert seen == [query, query]


@pytest.mark.parametrize("shape", [{"select": ["id", "timestamp"]}, {"include": ["wallet"]}])
def test_pages_shaped_by_select_or_include_get_no_hint(shape: dict[str, list[str]]) -> None:
    spec, spans = ENTITIES["wallet_balances"], PageSpans()
    plain = ListRequest(filters={"wallet_id": made_id("parent", 1)}, sort=["-timestamp"], limit=5)
    key, bound = spans.hint(spec, plan_list(spec, plain), plain)
    assert key and bound is None  # a list that takes a bound, none learned yet
    spans.learn(key, plan_list(spec, plain).query, datetime(2024, 1, 3), datetime(2024, 1, 2))
    assert spans.hint(spec, plan_list(spec, plain), plain) == (key, datetime(2024, 1, 1))  # twice the span back
    shaped = msgspec.structs.replace(plain, **shape)
    assert spans.hint(spec, plan_list(spec, shaped), shaped) == (b"", None)
