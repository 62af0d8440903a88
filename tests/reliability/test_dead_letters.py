"""Issue 9, relay: an outbox entry that can never be published goes to the dead-letter
table with its reason, the relay keeps publishing what follows (later changes of the same
key too), health says degraded with a count, verify shows it and repair clears it.

Such entries cannot be made through the API any more (writes are refused with 413); they
come from records stored under a larger max_payload, so the tests put them in the outbox
directly, as that history would have."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig

from service.app import Ekko
from service.config import Settings
from service.model.columns import utc_now
from service.store.outbox import Change
from service.store.uow import UnitOfWork
from tests.client import Client
from tests.factories import Factory
from tests.natsd import NatsServer
from tests.service_process import ekko_command, wait_ready
from tests.sync_helpers import eventually, read_events


def unpublishable(entity: str, entity_id: str, size: int, version: int = 99) -> Change:
    record = {"id": entity_id, "padding": "p" * size}
    data = json.dumps(record).encode()
    return Change(str(uuid.uuid4()), entity, "updated", entity_id, version, utc_now(), data)


async def put_in_outbox(ekko: Ekko, *changes: Change) -> None:
    def add(uow: UnitOfWork) -> None:
        for change in changes:
            uow.outbox.add(change)

    await ekko.db.write(add)


async def kv_version(nc: NATS, entity: str, key: str) -> int:
    entry = await (await nc.jetstream().key_value(entity)).get(key)
    return int(json.loads(entry.value)["version"])


async def test_the_relay_moves_on_past_entries_it_can_never_publish(
    ekko: Ekko, client: Client, make: Factory, service_nc: NATS
) -> None:
    assert ekko.relay is not None
    wallet = await make.create("wallets")
    max_payload = client.nc.max_payload
    async with ekko.relay.paused():  # one batch: the dead entries sit among publishable ones
        await put_in_outbox(
            ekko,
            # Its KV value fits, but the event is over once its envelope and headers are added:
            # sent anyway, nats-server would close the connection.
            unpublishable("wallets", wallet["id"], max_payload - 200),
            unpublishable("wallets", str(uuid.uuid4()), max_payload + 10),  # too large even for KV
            unpublishable("wallets", "not a key", 10),  # KV refuses the key, always
        )
        # A later change of the same key still publishes (KV is latest-wins).
        updated = await client.ok("ekko.wallets.update", {"id": wallet["id"], "name": "after"})
    later = [await make.create("wallets") for _ in range(10)]

    async def all_published() -> bool:
        return await ekko.relay.pending() == 0 and all(
            [await kv_version(service_nc, "wallets", w["id"]) == w["version"] for w in later]
        )

    await eventually(all_published, what="later changes published")
    assert await kv_version(service_nc, "wallets", wallet["id"]) == updated["version"]
    assert ekko.broker.connection.is_connected and not ekko.connection_lost.is_set()
    assert ekko.relay.stats.dead_letters == 3
    event_ids = {e["id"] for e in await read_events(service_nc)}
    assert {w["id"] for w in later} <= event_ids

    health = await client.ok("ekko.database.health")
    assert health["status"] == "degraded" and health["sync"]["dead_letters"] == 3
    assert (await client.ok("ekko.metrics"))["relay"]["dead_letters"] == 3
    verify = await client.ok("ekko.admin.sync.verify")
    assert verify["in_sync"] is False and verify["dead_letters"] == 3
    assert {d["id"] for d in verify["sample_dead_letters"]} >= {wallet["id"], "not a key"}
    assert all("max_payload" in d["error"] or "KV key" in d["error"] for d in verify["sample_dead_letters"])

    repaired = await client.ok("ekko.admin.sync.repair")
    assert repaired["dead_letters"] == {"cleared": 3}
    health = await client.ok("ekko.database.health")
    assert health["sync"]["dead_letters"] == 0 and health["status"] == "healthy"
    assert (await client.ok("ekko.metrics"))["relay"]["dead_letters"] == 0
    assert (await client.ok("ekko.admin.sync.verify"))["in_sync"] is True
    await make.create("wallets")  # still writing and relaying
    await eventually(lambda: _drained(ekko), what="relay drained")


async def _drained(ekko: Ekko) -> bool:
    assert ekko.relay is not None
    return await ekko.relay.pending() == 0


async def test_a_stored_record_larger_than_a_reply_is_a_413_and_repair_skips_it(
    ekko: Ekko, client: Client, make: Factory
) -> None:
    """A row stored under a larger max_payload: get and list answer 413 naming it instead of
    dropping the reply, and repair reports it as skipped instead of failing."""
    wallet = await make.create("wallets")
    await eventually(lambda: _drained(ekko), what="relay drained")
    big = "n" * (client.nc.max_payload + 100)

    def grow(uow: UnitOfWork) -> None:
        uow.cursor.execute("UPDATE wallets SET name = ? WHERE id = ?", [big, wallet["id"]])

    await ekko.db.write(grow)
    ekko.cache.clear()
    for subject, body in (("ekko.wallets.get", {"id": wallet["id"]}), ("ekko.wallets.list", {})):
        reply = await client.request(subject, body)
        assert reply.status == 413 and reply.error["code"] == "payload_too_large", reply.body
    repaired = await client.ok("ekko.admin.sync.repair")
    assert repaired["wallets"]["skipped"] == 1
    assert (await client.request("ekko.health")).ok


async def test_ekko_sync_verify_and_repair_commands_show_and_clear_dead_letters(
    settings: Settings, nats_server: NatsServer, db_path: Path
) -> None:
    app = Ekko(settings, nats_server.url)
    await app.start()
    try:
        assert app.relay is not None
        relay = app.relay
        await put_in_outbox(app, unpublishable("agents", "bad key!", 10))

        # The outbox can read empty before the relay's coroutine, resumed after the commit that
        # moved the entry, has counted it: wait for both.
        async def dead_lettered() -> bool:
            return relay.stats.dead_letters == 1 and await _drained(app)

        await eventually(dead_lettered, what="entry dead-lettered")
    finally:
        await app.stop()
    code, out, err = await ekko_command("sync", "verify", "--json", nats_url=nats_server.url, db_path=db_path)
    report = json.loads(out)
    assert code == 1 and report["in_sync"] is False and report["dead_letters"] == 1, err
    assert report["sample_dead_letters"][0]["id"] == "bad key!"
    code, out, err = await ekko_command("sync", "repair", "--json", nats_url=nats_server.url, db_path=db_path)
    assert code == 0 and json.loads(out)["dead_letters"] == {"cleared": 1}, err
    code, out, err = await ekko_command("sync", "verify", "--json", nats_url=nats_server.url, db_path=db_path)
    assert code == 0 and json.loads(out)["dead_letters"] == 0, err


async def test_a_bucket_that_refuses_a_value_for_good_does_not_stop_the_relay(
    settings: Settings, nats_server: NatsServer
) -> None:
    """A legacy bucket may cap its values (max_value_size): JetStream refuses a larger one with
    error 10054 however often it is retried. The relay finds that entry and moves on."""
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().create_key_value(KeyValueConfig(bucket="alerts", history=1, max_value_size=2_000))
    app = Ekko(settings, nats_server.url)
    await app.start()
    try:
        assert app.relay is not None
        client = Client(nc)
        await wait_ready(client)  # its subscriptions reach the server after start() returns
        make = Factory(client)
        big = await make.create("alerts", message="m" * 5_000)
        small = [await make.create("alerts") for _ in range(5)]
        await eventually(lambda: _drained(app), what="relay past the refused value")
        for alert in small:
            assert await kv_version(nc, "alerts", alert["id"]) == 1
        assert app.relay.stats.dead_letters == 1
        verify = await client.ok("ekko.admin.sync.verify")
        assert verify["sample_dead_letters"][0]["id"] == big["id"]
        assert "10054" in verify["sample_dead_letters"][0]["error"]
        repaired = await client.ok("ekko.admin.sync.repair")
        assert repaired["alerts"]["skipped"] == 1 and repaired["dead_letters"] == {"cleared": 1}
    finally:
        await app.stop()
        await nc.close()
