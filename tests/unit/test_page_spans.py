"""A time-ordered list bounded by how far its last page reached returns exactly the pages it
returns unbounded, also when the rows grow sparse, so that the learned bound falls short."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from schema.common import ListReply, ListRequest
from service.model.limits import PayloadLimit
from service.model.registry import ENTITIES
from service.store.database import Database
from service.usecases.listing import list_page
from service.usecases.page_spans import PageSpans
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
