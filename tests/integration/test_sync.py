"""Issue 3: every committed change reaches the KV buckets and the events stream, once, in order."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest
from nats.aio.client import Client as NATS

from schema.wallets import WalletCreate
from service.app import Ekko
from tests.client import Client
from tests.natsd import NatsServer
from tests.sync_helpers import eventually, read_events, relay_idle


def evm_address(n: int) -> str:
    return "0x" + f"{n:040x}"


async def in_sync(ekko: Ekko) -> bool:
    return (await ekko.status.sync_verify()).in_sync and (await ekko.relay.pending()) == 0


async def test_after_many_changes_kv_equals_duckdb_and_each_change_is_one_event(
    client: Client, ekko: Ekko, service_nc: NATS
) -> None:
    rng = random.Random(7)
    ids: list[str] = []
    changes = 0
    for n in range(60):
        ids.append(
            (await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": evm_address(n)}))["id"]
        )
        changes += 1
    for _ in range(80):
        wallet_id = rng.choice(ids)
        await client.ok("ekko.wallets.update", {"id": wallet_id, "name": f"n{rng.random()}"})
        changes += 1
    deleted = rng.sample(ids, 15)
    for wallet_id in deleted:
        await client.ok("ekko.wallets.delete", {"id": wallet_id})
        changes += 1

    waited = await eventually(lambda: in_sync(ekko), what="KV equal to DuckDB")
    report = await ekko.status.sync_verify()
    events = await read_events(service_nc)
    print(f"\n{changes} changes; KV in sync after {waited:.2f}s; {len(events)} events; verify={report.buckets[1]}")

    assert report.in_sync
    assert len(events) == changes
    assert len({e["event_id"] for e in events}) == changes
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event["id"]].append(event["version"])
        assert (event["data"] is None) == (event["action"] == "deleted")
    for wallet_id, seen in versions.items():
        assert seen == sorted(seen), f"events of {wallet_id} out of order: {seen}"
        assert seen[0] == 1
    # Counted by verify's bucket reader: nats-py's kv.keys() gives up early on a loaded machine.
    wallets = next(b for b in report.buckets if b.entity == "wallets")
    assert wallets.kv_keys == wallets.duckdb_rows == 60 - 15


async def test_writes_survive_a_nats_outage_and_the_backlog_drains(
    ekko: Ekko, nats_server: NatsServer, client: Client
) -> None:
    await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": evm_address(10_000)})
    await eventually(lambda: in_sync(ekko))
    await client.nc.close()

    nats_server.stop()
    wallets = ekko.services["wallets"]
    for n in range(40):  # the second route: the service layer itself, while NATS is down
        await wallets.create(WalletCreate(blockchain_symbol="ETH", address=evm_address(n)))
    await eventually(lambda: _relay_failed(ekko), what="relay noticing the outage")
    health = await ekko.status.database_health()
    print(f"\nduring outage: pending={health.sync.pending} failed_attempts={health.sync.failed_attempts}")
    assert health.sync.pending >= 40
    assert health.tables["wallets"] == 41
    assert health.sync.last_error is not None

    nats_server.start()
    waited = await eventually(lambda: in_sync(ekko), timeout=30, what="backlog drained after restart")
    health = await ekko.status.database_health()
    print(f"after restart: drained in {waited:.2f}s, pending={health.sync.pending}, published={health.sync.published}")
    assert health.sync.pending == 0
    assert (await ekko.status.sync_verify()).in_sync


async def _relay_failed(ekko: Ekko) -> bool:
    return ekko.relay.stats.failed_attempts > 0


async def test_a_removed_bucket_is_rebuilt_from_duckdb(ekko: Ekko, client: Client, service_nc: NATS) -> None:
    for n in range(20):
        await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": evm_address(n)})
    await eventually(lambda: in_sync(ekko))
    await service_nc.jetstream().delete_key_value("wallets")

    for n in range(20, 30):  # writes go on while the bucket is gone
        await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": evm_address(n)})
    waited = await eventually(lambda: in_sync(ekko), timeout=30, what="bucket rebuilt")
    report = await ekko.status.sync_verify()
    wallets = next(b for b in report.buckets if b.entity == "wallets")
    print(f"\nbucket rebuilt in {waited:.2f}s: kv_keys={wallets.kv_keys} duckdb_rows={wallets.duckdb_rows}")
    assert wallets.kv_keys == wallets.duckdb_rows == 30
    assert ekko.relay.stats.repairs >= 1


async def test_with_sync_disabled_nothing_is_queued_and_repair_catches_kv_up(settings, nats_server: NatsServer) -> None:
    from service.app import Ekko

    app = Ekko(settings.with_(enable_jetstream_sync=False), nats_server.url)
    await app.start()
    try:
        for n in range(5):
            await app.services["wallets"].create(WalletCreate(blockchain_symbol="ETH", address=evm_address(n)))
        health = await app.status.database_health()
        assert health.sync.enabled is False and health.sync.pending == 0
        before = await app.status.sync_verify()
        assert not before.in_sync and before.buckets[1].missing == 5
        result = await app.status.sync_repair()
        assert result["wallets"] == {"put": 5, "deleted": 0}
        assert (await app.status.sync_verify()).in_sync
    finally:
        await app.stop()


@pytest.mark.serial  # times the publishing against the writer's busy spell
async def test_the_relay_publishes_on_while_the_writer_is_busy_each_change_once(
    client: Client, ekko: Ekko, service_nc: NATS
) -> None:
    """Published entries leave the outbox in the background: a writer busy for seconds (a long
    write group) does not hold up the batches after the first, and no change goes out twice."""
    assert ekko.relay is not None
    ids = [
        (await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": evm_address(n)}))["id"]
        for n in range(12)
    ]
    await relay_idle(ekko)
    before = len(await read_events(service_nc))
    batch_size, ekko.relay.batch_size = ekko.relay.batch_size, 2  # six batches for the twelve below
    try:
        updates = [asyncio.create_task(client.ok("ekko.wallets.update", {"id": i, "name": "renamed"})) for i in ids]
        await asyncio.gather(*updates)  # committed: the outbox holds twelve entries
        busy = asyncio.create_task(ekko.db.write(lambda uow: time.sleep(3)))  # the writer, taken for 3 s
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await eventually(lambda: _events_after(service_nc, before, 12), timeout=10, what="all twelve published")
        assert time.monotonic() - started < 2.5, "every batch went out while the writer was still busy"
        await busy
    finally:
        ekko.relay.batch_size = batch_size
    await relay_idle(ekko)  # and the outbox forgot them once the writer was free
    events = (await read_events(service_nc))[before:]
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert all(e["action"] == "updated" and e["data"]["name"] == "renamed" for e in events)


async def _events_after(nc: NATS, before: int, count: int) -> bool:
    return len(await read_events(nc)) >= before + count
