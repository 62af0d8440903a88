"""Events carry the record before and after the change, the write (transaction) they belong
to and the caller's correlation id, in the body and again in headers; the stream's retention
follows the settings; outbox rows queued by an older version still relay after migrating."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from schema.common import encode
from schema.events import CORRELATION_HEADER
from schema.wallets import Wallet
from service.app import Ekko
from service.config import Settings
from service.model.values import FixedDecimal
from service.store.ddl import MIGRATIONS, current_version
from service.sync.jetstream import EVENTS_STREAM
from tests.client import Client, assert_rejected
from tests.factories import Factory
from tests.natsd import NatsServer
from tests.sync_helpers import read_event_messages, relay_idle


def decoded(msg: Msg) -> dict[str, Any]:
    """The event, after checking that its headers (the documented names) say what its body says."""
    event: dict[str, Any] = json.loads(msg.data)
    assert msg.subject.endswith(f".events.{event['entity']}.{event['action']}")
    fields = ("event_id", "entity", "action", "id", "version", "tx_id", "tx_index", "tx_count", "correlation_id")
    names = ("Nats-Msg-Id", "Ekko-Entity", "Ekko-Action", "Ekko-Entity-Id", "Ekko-Version", "Ekko-Tx-Id")
    names += ("Ekko-Tx-Index", "Ekko-Tx-Count", "Ekko-Correlation-Id")
    headers = msg.headers or {}
    sent = {name: headers.get(name) for name in names}
    assert sent == {n: None if event[f] is None else str(event[f]) for n, f in zip(names, fields, strict=True)}
    return event


async def events_of(ekko: Ekko, nc: NATS) -> list[dict[str, Any]]:
    await relay_idle(ekko)
    return [decoded(msg) for msg in await read_event_messages(nc)]


async def test_a_cascade_delete_is_one_transaction_of_events_numbered_in_order(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    wallet = await make.create("wallets")
    children = [await make.create("alerts", related_wallet_id=wallet["id"])]
    children += [await make.create("wallet_balances", wallet_id=wallet["id"]) for _ in range(2)]
    wallet = await client.ok("ekko.wallets.get", {"id": wallet["id"]})  # its balance follows its rows
    await client.ok(
        "ekko.wallets.delete", {"id": wallet["id"], "cascade": True}, headers={CORRELATION_HEADER: "order-7/step:2"}
    )

    events = await events_of(ekko, service_nc)
    deletes = [e for e in events if e["action"] == "deleted"]
    assert len(deletes) == 4
    assert len({e["tx_id"] for e in deletes}) == 1
    assert [e["tx_index"] for e in deletes] == [0, 1, 2, 3]
    assert {e["tx_count"] for e in deletes} == {4}
    assert deletes[-1]["id"] == wallet["id"]  # children go first: no event shows an orphan
    assert {e["id"] for e in deletes[:-1]} == {child["id"] for child in children}
    records = {row["id"]: row for row in (wallet, *children)}
    for event in deletes:
        assert event["data"] is None
        assert event["before"] == records[event["id"]]  # the row as it was when deleted
        assert event["version"] == records[event["id"]]["version"]
        assert event["correlation_id"] == "order-7/step:2"
    creates = [e for e in events if e["action"] == "created"]
    assert len(creates) == 4
    assert len({e["tx_id"] for e in creates} | {deletes[0]["tx_id"]}) == 5  # each create its own write
    assert all((e["tx_index"], e["tx_count"], e["before"], e["correlation_id"]) == (0, 1, None, None) for e in creates)


async def test_an_update_carries_the_record_before_and_after_and_kv_holds_the_record_alone(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    created = await make.create("wallets", name="before")
    updated = await client.ok(
        "ekko.wallets.update", {"id": created["id"], "name": "after"}, headers={CORRELATION_HEADER: "c-1"}
    )

    (event,) = [e for e in await events_of(ekko, service_nc) if e["action"] == "updated"]
    assert event["before"] == created
    assert event["data"] == updated
    assert event["before_omitted"] is False
    assert (event["version"], event["before"]["version"]) == (2, 1)
    assert (event["tx_index"], event["tx_count"], event["correlation_id"]) == (0, 1, "c-1")
    entry = await service_nc.jetstream().key_value("wallets")
    assert json.loads((await entry.get(created["id"])).value or b"") == updated  # older KV readers see no envelope


async def test_an_update_of_a_large_record_is_published_without_the_image_before(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    """Both images would exceed max_payload (nats-server would close the service's connection):
    the event goes without `before`, says so, and nothing is dead-lettered."""
    blob = "x" * (client.nc.max_payload * 6 // 10)
    created = await make.create("agents", config={"blob": blob})
    updated = await client.ok("ekko.agents.update", {"id": created["id"], "name": "renamed"})

    (event,) = [e for e in await events_of(ekko, service_nc) if e["action"] == "updated"]
    assert (event["before"], event["before_omitted"], event["data"]) == (None, True, updated)
    health = await ekko.status.database_health()
    assert (health.sync.dead_letters, health.sync.pending) == (0, 0)
    assert ekko.relay is not None and ekko.relay.stats.last_error is None
    assert await client.ok("ekko.agents.get", {"id": created["id"]}) == updated  # the service is still connected


async def test_writes_committed_in_one_group_keep_their_own_transaction_and_correlation_id(
    client: Client, make: Factory, ekko: Ekko, service_nc: NATS
) -> None:
    payloads = [await make.payload("wallets") for _ in range(24)]
    replies = await asyncio.gather(
        *(
            client.ok("ekko.wallets.create", body, headers={CORRELATION_HEADER: f"req-{n}"})
            for n, body in enumerate(payloads)
        )
    )

    events = {e["id"]: e for e in await events_of(ekko, service_nc)}
    for n, reply in enumerate(replies):
        assert events[reply["id"]]["correlation_id"] == f"req-{n}"
    assert len({e["tx_id"] for e in events.values()}) == len(replies)
    print(f"\n{len(replies)} concurrent creates in {ekko.db.group_commits} writer transactions")


@pytest.mark.parametrize("value", ["has space", "x" * 129, "caf\u00e9", ""])
async def test_a_bad_correlation_id_is_refused_with_400_and_changes_nothing(
    client: Client, make: Factory, ekko: Ekko, value: str
) -> None:
    before = await client.ok("ekko.wallets.list", {})
    reply = await client.request(
        "ekko.wallets.create", await make.payload("wallets"), headers={CORRELATION_HEADER: value}
    )
    assert_rejected(reply, 400, CORRELATION_HEADER)
    assert await client.ok("ekko.wallets.list", {}) == before


async def test_stream_retention_follows_the_settings_on_create_and_on_a_later_start(
    settings: Settings, nats_server: NatsServer, service_nc: NATS
) -> None:
    js = service_nc.jetstream()
    for max_age, max_bytes in ((3600.0, 50_000_000), (7200.0, 0)):
        app = Ekko(settings.with_(events_max_age=max_age, events_max_bytes=max_bytes), nats_server.url)
        await app.start()
        try:
            config = (await js.stream_info(EVENTS_STREAM)).config
        finally:
            await app.stop()
        assert (config.max_age, config.max_bytes) == (max_age, max_bytes or -1)
        assert config.duplicate_window == settings.events_duplicate_window  # the rest is left as it was


def database_at_version_3_with_a_pending_change(path: Path) -> Wallet:
    """A database as the release before the event envelope left it: a wallet whose create
    event is still in the outbox (old columns only)."""
    now = datetime.now(UTC).replace(microsecond=0)
    wallet = Wallet(
        id="8c6a3f4e-5b2d-4c1a-9e7f-0123456789ab",
        created_at=now,
        updated_at=now,
        version=1,
        blockchain_symbol="ETH",
        address="0x" + "ab" * 20,
        balance=FixedDecimal("1.50000000"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        current_version(con)
        for number, description, sql in MIGRATIONS[:3]:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [number, description, now.replace(tzinfo=None)])
        naive = now.replace(tzinfo=None)
        con.execute(
            "INSERT INTO wallets (id, created_at, updated_at, version, blockchain_symbol, address, balance, status)"
            " VALUES (?, ?, ?, 1, 'ETH', ?, 1.5, 'active')",
            [wallet.id, naive, naive, wallet.address],
        )
        con.execute(
            "INSERT INTO outbox (event_id, entity, entity_id, action, version, occurred_at, data)"
            " VALUES ('old-event-1', 'wallets', ?, 'created', 1, ?, ?)",
            [wallet.id, naive, encode(wallet)],
        )
    finally:
        con.close()
    return wallet


async def test_outbox_rows_queued_before_the_envelope_migration_still_relay(
    settings: Settings, nats_server: NatsServer, service_nc: NATS
) -> None:
    wallet = database_at_version_3_with_a_pending_change(settings.duckdb_path)
    app = Ekko(settings, nats_server.url)
    await app.start()
    try:
        await relay_idle(app)
        assert await app.db.read(current_version) == MIGRATIONS[-1][0]
        (event,) = [decoded(msg) for msg in await read_event_messages(service_nc)]
        kv = await service_nc.jetstream().key_value("wallets")
        assert json.loads((await kv.get(wallet.id)).value or b"") == json.loads(encode(wallet))
    finally:
        await app.stop()
    assert (event["event_id"], event["id"], event["data"]) == ("old-event-1", wallet.id, json.loads(encode(wallet)))
    # A row from before has no transaction: it is one of its own, named by its event id.
    assert (event["tx_id"], event["tx_index"], event["tx_count"]) == ("old-event-1", 0, 1)
    assert (event["before"], event["correlation_id"]) == (None, None)
