"""An ingest is one outbox entry, but every row reaches KV and EKKO_EVENTS as its own create
would: its record as the KV value and the event's data, one event each, numbered in the order
of the items within one transaction, with the caller's correlation id; also after a NATS
outage, and without a second copy when a batch is published again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from nats.aio.client import Client as NATS

from schema.balances import IngestRequest
from schema.events import CORRELATION_HEADER
from schema.wallet_balances import WalletBalanceCreate
from service.app import Ekko
from service.store.outbox import OutboxRepository
from service.store.scratch import SCRATCH
from service.sync.relay import BULK_GRACE, BULK_YIELD
from tests.client import Client, assert_rejected
from tests.factories import Factory
from tests.natsd import NatsServer
from tests.sync_helpers import eventually, read_event_messages, read_events, relay_idle

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def items(wallets: list[str], count: int) -> list[dict[str, Any]]:
    return [
        {
            "wallet_id": wallets[n % len(wallets)],
            "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
            "balance": f"{n}.{n:018d}",
            "token_price": "2000.5",
            "fiat_value": None if n % 3 else f"{n}.5",
        }
        for n in range(count)
    ]


async def balance_events(nc: NATS) -> list[tuple[dict[str, Any], dict[str, str]]]:
    messages = await read_event_messages(nc)  # all of them: the helper counts the whole stream
    return [(json.loads(m.data), dict(m.headers or {})) for m in messages if ".wallet_balances." in m.subject]


async def kv_value(nc: NATS, entity_id: str) -> bytes:
    kv = await nc.jetstream().key_value("wallet_balances")
    entry = await kv.get(entity_id)
    assert entry.value is not None
    return entry.value


async def test_every_ingested_row_is_a_create_in_kv_and_events_in_item_order(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    wallets = [(await make.create("wallets"))["id"] for _ in range(3)]
    chosen = str(uuid.uuid4()).upper()  # a caller's id is stored lower-case, as create does
    body = items(wallets, 40)
    body[7]["id"] = chosen
    reply = await client.ok(
        "ekko.wallet_balances.ingest", {"items": body}, headers={CORRELATION_HEADER: "import-2026-03"}
    )
    assert reply["ids"][7] == chosen.lower()
    await relay_idle(ekko)

    events = await balance_events(service_nc)
    assert [e["id"] for e, _ in events] == reply["ids"]  # one event per row, in item order
    assert {e["tx_id"] for e, _ in events} == {events[0][0]["tx_id"]}
    assert [e["tx_index"] for e, _ in events] == list(range(40))
    # The three wallets whose balance followed their newest row close the same transaction.
    assert {(e["tx_count"], e["action"], e["version"], e["correlation_id"]) for e, _ in events} == {
        (43, "created", 1, "import-2026-03")
    }
    followed = [e for e in await read_events(service_nc) if e["tx_id"] == events[0][0]["tx_id"]][40:]
    assert sorted(e["id"] for e in followed) == sorted(wallets)
    assert [(e["entity"], e["action"], e["tx_index"]) for e in followed] == [
        ("wallets", "updated", i) for i in range(40, 43)
    ]
    assert len({e["event_id"] for e, _ in events}) == 40
    assert all(uuid.UUID(e["event_id"]).version == 4 for e, _ in events)
    for event, headers in events:
        assert headers["Nats-Msg-Id"] == event["event_id"]
        assert headers["Ekko-Tx-Index"] == str(event["tx_index"])
        assert headers["Ekko-Correlation-Id"] == "import-2026-03"
        assert event["before"] is None and event["before_omitted"] is False
        row = await client.ok("ekko.wallet_balances.get", {"id": event["id"]})
        assert event["data"] == row  # the record as stored, fixed-point decimals and all
        assert json.loads(await kv_value(service_nc, event["id"])) == row
    report = await ekko.status.sync_verify()
    assert report.in_sync, report


async def test_a_plain_create_and_an_ingested_row_have_the_same_envelope(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    wallet = (await make.create("wallets"))["id"]
    body = items([wallet], 2)
    created = await client.ok("ekko.wallet_balances.create", body[0])
    ingested = await client.ok("ekko.wallet_balances.ingest", {"items": body[1:]})
    await relay_idle(ekko)
    events = {e["id"]: (e, h) for e, h in await balance_events(service_nc)}
    one, one_headers = events[created["id"]]
    many, many_headers = events[ingested["ids"][0]]
    assert sorted(one) == sorted(many)
    assert sorted(one_headers) == sorted(many_headers)
    for field in ("entity", "action", "version", "tx_index", "before", "correlation_id"):
        assert one[field] == many[field], field


async def test_rows_ingested_while_nats_is_down_arrive_once_after_it_returns(
    ekko: Ekko, nats_server: NatsServer, client: Client, make: Factory
) -> None:
    wallet = (await make.create("wallets"))["id"]
    await relay_idle(ekko)
    await client.nc.close()
    nats_server.stop()
    request = IngestRequest(
        items=[
            WalletBalanceCreate(wallet_id=wallet, balance=Decimal(n), timestamp=T0 + timedelta(hours=n))
            for n in range(1, 26)
        ]
    )
    first = await ekko.balances.ingest(request)  # the service layer itself, while NATS is down
    second = await ekko.balances.ingest(request)
    health = await ekko.status.database_health()
    assert health.sync.pending >= 50  # a batch entry counts every row it stands for
    assert health.tables["wallet_balances"] == 50

    nats_server.start()
    await eventually(lambda: _in_sync(ekko), timeout=60, what="backlog drained after restart")
    events = await balance_events(ekko.sync.connection)  # the service's own connection, reconnected
    assert [e["id"] for e, _ in events] == first.ids + second.ids
    assert len({e["event_id"] for e, _ in events}) == 50


async def test_a_batch_published_twice_gives_each_event_once(ekko: Ekko, client: Client, make: Factory) -> None:
    """The relay retries a whole batch after a failure: the members' event ids are derived
    from the entry, so JetStream drops the second copy."""
    wallet = (await make.create("wallets"))["id"]
    await relay_idle(ekko)
    async with ekko.relay.paused():
        reply = await client.ok("ekko.wallet_balances.ingest", {"items": items([wallet], 12)})
        pending = await ekko.db.read(lambda cur: OutboxRepository(cur).pending(1000))
        rows = [c for c in pending if c.entity == "wallet_balances"]
        assert [c.entity_id for c in rows] == reply["ids"]
        await ekko.sync.publish(rows)  # as a relay that failed before deleting the batch would
    await relay_idle(ekko)
    events = await balance_events(ekko.sync.connection)
    assert [e["id"] for e, _ in events] == reply["ids"]


async def no_scratch_tables(ekko: Ekko) -> bool:
    """No table in the scratch database, where ingests stage their rows (docs/decisions.md 45)."""
    sql = f"SELECT count(*) FROM duckdb_tables() WHERE database_name = '{SCRATCH}'"
    return int((await ekko.db.read(lambda cur: cur.execute(sql).fetchall()))[0][0]) == 0


async def _in_sync(ekko: Ekko) -> bool:
    assert ekko.relay is not None
    return (await ekko.relay.pending()) == 0 and (await ekko.status.sync_verify()).in_sync


async def test_ingest_names_the_item_with_a_repeated_existing_or_orphan_id_and_stores_nothing(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    wallet = (await make.create("wallets"))["id"]
    existing = await client.ok("ekko.wallet_balances.create", {"wallet_id": wallet, "balance": "1"})
    many = items([wallet], 1_500)  # past sql.BULK_LOOKUP: the wallets are looked up as one list
    chosen = str(uuid.uuid4())
    cases = [
        ([{**many[0], "id": chosen}, {**many[1], "id": chosen.upper()}], 400, "items[1].id"),
        ([many[0], {**many[1], "id": existing["id"]}], 409, "items[1].id"),
        ([*many[:1200], {**many[1200], "wallet_id": str(uuid.uuid4())}, *many[1201:]], 404, "items[1200].wallet_id"),
    ]
    for body, status, field in cases:
        assert_rejected(await client.request("ekko.wallet_balances.ingest", {"items": body}), status, field)
    page = await client.ok("ekko.wallet_balances.list", {"count": True})
    assert page["total"] == 1
    await eventually(lambda: no_scratch_tables(ekko), what="a refused ingest leaves nothing staged")
    await relay_idle(ekko)
    assert [e["id"] for e, _ in await balance_events(service_nc)] == [existing["id"]]  # nothing relayed
    await client.ok("ekko.wallet_balances.ingest", {"items": many[:10]})
    await eventually(lambda: no_scratch_tables(ekko), what="nor does one that committed")


async def test_the_relay_waits_while_ingests_follow_each_other_then_catches_up(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    """During a stream of batch writes the relay leaves the CPU to them (at most BULK_YIELD
    per batch of changes); once they stop it publishes what they left, without being woken."""
    wallet = (await make.create("wallets"))["id"]
    await relay_idle(ekko)
    published = ekko.relay.stats.published if ekko.relay else 0
    with ekko.db.bulk():  # an ingest under way, as BalanceService.ingest marks it
        reply = await client.ok("ekko.wallet_balances.ingest", {"items": items([wallet], 3)})
        held = time.monotonic()
        while time.monotonic() - held < 1.0:
            await asyncio.sleep(0.05)
            assert ekko.relay is not None and ekko.relay.stats.published == published, "published during the ingest"
    await relay_idle(ekko)
    assert await kv_value(service_nc, reply["ids"][2])


async def test_a_stream_of_ingests_longer_than_the_hold_back_is_published_as_it_goes(
    client: Client, make: Factory, ekko: Ekko
) -> None:
    """The relay leaves the CPU to a stream of ingests only until the oldest waiting change
    has waited BULK_YIELD: after that it publishes beside the stream, so what was ingested
    more than BULK_YIELD (plus slack) before the stream ends is out when it ends."""
    wallet = (await make.create("wallets"))["id"]
    await relay_idle(ekko)
    assert ekko.relay is not None
    published = ekko.relay.stats.published
    committed: list[tuple[float, int]] = []  # (when, rows ingested so far)
    start, rows = time.monotonic(), 0
    batch_size, ekko.relay.batch_size = ekko.relay.batch_size, 10  # a batch is one ingest's entry
    try:
        while time.monotonic() - start < BULK_YIELD + 4:
            await client.ok("ekko.wallet_balances.ingest", {"items": items([wallet], 50)})
            rows += 50
            committed.append((time.monotonic(), rows))
            await asyncio.sleep(BULK_GRACE / 2)  # the next batch comes within the grace: the stream never pauses
        end = time.monotonic()
        due = max([n for t, n in committed if t < end - BULK_YIELD - 2], default=0)
        assert due >= 150, "the stream ran long enough to check"  # 3 ingests (fewer than 10 on a loaded machine)
        assert ekko.relay.stats.published - published >= due
    finally:
        ekko.relay.batch_size = batch_size
