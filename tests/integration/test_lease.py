"""The writer lease against a real NATS: refused while its owner heartbeats, taken once a
dead owner's key expires, released on a clean stop, and a lost lease stops serving.
(tests/e2e/test_writer_lease.py does the same with real `ekko run` processes.)"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from service.app import Ekko
from service.config import Settings
from service.sync.lease import LEASE_BUCKET, LeaseHeld, LeaseOwner, WriterLease
from tests.client import Client
from tests.natsd import NatsServer
from tests.sync_helpers import eventually

TTL = 3  # bare leases: nothing else runs on the loop
APP_TTL = 12  # a whole service: starting it blocks the loop for a moment (DuckDB opens synchronously),
# and on a loaded 2-core machine a heartbeat may be seconds late


def owner(deployment: str = "ekko", database: str = "/srv/a.db", host: str = "host-a") -> LeaseOwner:
    return LeaseOwner(deployment, "i-" + host, host, 4242, database, "0.1.0", "2026-01-01T00:00:00+00:00")


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


async def test_a_second_instance_is_refused_with_the_owners_host_pid_and_database(
    settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    first = Ekko(settings.with_(lease_ttl=APP_TTL), nats_server.url)
    await first.start()
    other_db = tmp_path / "elsewhere" / "other.db"
    try:
        second = Ekko(settings.with_(lease_ttl=APP_TTL, duckdb_path=other_db), nats_server.url)
        started = time.monotonic()
        with pytest.raises(LeaseHeld) as refused:
            await second.start()
        waited = time.monotonic() - started
        message = str(refused.value)
        assert socket.gethostname() in message and f"pid {os.getpid()}" in message
        assert str(settings.duckdb_path) in message and first.instance_id in message
        assert waited < APP_TTL, "refused as soon as the owner heartbeats, not after the TTL"
        assert not other_db.exists(), "a refused instance never opens its database"
        assert (await first.status.database_health()).path == str(settings.duckdb_path)
    finally:
        await first.stop()


async def test_a_dead_owners_lease_is_taken_once_it_expires(nc: NATS) -> None:
    js = nc.jetstream()
    dead = WriterLease(owner(host="host-a"), TTL)
    await dead.acquire(js)
    assert dead._heartbeat is None  # never kept: it stops heartbeating at once, like a SIGKILLed process
    started = time.monotonic()
    heir = WriterLease(owner(host="host-b", database="/srv/b.db"), TTL)
    await heir.acquire(js)
    waited = time.monotonic() - started
    assert waited < TTL + 2.5, f"took {waited:.1f} s"
    kv = await js.key_value(LEASE_BUCKET)
    entry = await kv.get("ekko.writer")
    assert entry.value is not None and b"host-b" in entry.value
    await heir.release()


async def test_a_cleanly_stopped_owner_hands_over_at_once(nc: NATS) -> None:
    js = nc.jetstream()
    first = WriterLease(owner(host="host-a"), 30)
    await first.acquire(js)
    first.keep(lambda reason: None)
    await first.release()
    started = time.monotonic()
    second = WriterLease(owner(host="host-b"), 30)
    await second.acquire(js)
    assert time.monotonic() - started < 1.0
    await second.release()


async def test_leases_of_different_deployments_do_not_collide(nc: NATS) -> None:
    js = nc.jetstream()
    a, b = WriterLease(owner("east"), TTL), WriterLease(owner("west"), TTL)
    await a.acquire(js)
    await b.acquire(js)
    assert a.held and b.held
    await a.release()
    await b.release()


async def test_an_instance_that_loses_its_lease_stops_serving(
    settings: Settings, nats_server: NatsServer, nc: NATS
) -> None:
    app = Ekko(settings.with_(lease_ttl=APP_TTL), nats_server.url)
    await app.start()
    try:
        client = Client(nc)
        await client.ok("ekko.health")
        kv = await nc.jetstream().key_value(LEASE_BUCKET)
        await kv.put("ekko.writer", b'{"taken": "by hand"}')  # another writer, as far as the owner can tell
        await asyncio.wait_for(app.lease_lost.wait(), APP_TTL + 5)

        async def deaf() -> bool:
            try:
                await nc.request("ekko.health", b"", timeout=0.5)
            except nats.errors.NoRespondersError:
                return True
            except nats.errors.TimeoutError:  # a subscriber still closing, or a loaded machine
                return False
            return False

        await eventually(deaf, timeout=10, what="subscribers stopped")
        assert not app.lease.held
    finally:
        await app.stop()
    entry = await kv.get("ekko.writer")
    assert entry.value == b'{"taken": "by hand"}', "stop leaves a lease it no longer holds alone"


async def test_a_renewal_stored_after_its_ack_timed_out_is_adopted_not_lost(nc: NATS) -> None:
    js = nc.jetstream()
    lease = WriterLease(owner(), TTL)
    await lease.acquire(js)
    lost: list[str] = []
    lease.keep(lost.append)
    try:
        stale = lease.revision
        # our own value at a newer revision, as if a heartbeat was stored but its ack was lost
        ack = await js.publish(
            f"$KV.{LEASE_BUCKET}.ekko.writer",
            lease._value,
            headers={"Nats-Expected-Last-Subject-Sequence": str(stale)},
            msg_ttl=TTL,
        )
        await eventually(lambda: _async(lease.revision > ack.seq), timeout=TTL * 2, what="heartbeat after adoption")
        assert lost == [] and lease.held
    finally:
        await lease.release()


async def _async(value: bool) -> bool:
    return value


async def test_a_bucket_made_by_hand_without_message_ttls_gets_them(nc: NATS) -> None:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=f"KV_{LEASE_BUCKET}",
            subjects=[f"$KV.{LEASE_BUCKET}.>"],
            max_msgs_per_subject=1,
            allow_rollup_hdrs=True,
            deny_delete=True,
            allow_direct=True,
        )
    )
    lease = WriterLease(owner(), TTL)
    await lease.acquire(js)
    assert lease.held
    assert (await js.stream_info(f"KV_{LEASE_BUCKET}")).config.allow_msg_ttl
    await lease.release()
