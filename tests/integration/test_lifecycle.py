"""Stopping the service: it must finish promptly and leave DuckDB closed and
checkpointed, also when NATS is gone (a shutdown during an outage must not hang)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from decimal import Decimal

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from schema.wallets import WalletCreate
from service.app import SWITCH_INTERVAL_SECONDS, Ekko, _SwitchInterval
from service.config import Settings
from service.store.database import connect
from tests.factories import payload_of
from tests.natsd import NatsServer
from tests.sync_helpers import eventually

USER = payload_of("users", 1)


async def test_stop_during_a_nats_outage_finishes_and_keeps_the_outbox(
    settings: Settings, nats_server: NatsServer
) -> None:
    app = Ekko(settings, nats_server.url)
    await app.start()
    nats_server.stop()
    created = await app.services["wallets"].create(
        WalletCreate(blockchain_symbol="ETH", address="0x" + "ab" * 20, balance=Decimal("1"))
    )
    started = time.monotonic()
    await asyncio.wait_for(app.stop(), 30)
    seconds = time.monotonic() - started
    print(f"stop with NATS down took {seconds:.2f} s")
    assert seconds < 15
    con = connect(settings.duckdb_path)  # the lock is released
    try:
        pending = con.execute("SELECT entity_id FROM outbox").fetchall()
        wal = settings.duckdb_path.with_name(settings.duckdb_path.name + ".wal")
    finally:
        con.close()
    assert pending == [(created.id,)], "the unpublished change waits in the outbox for the next start"
    assert not wal.exists() or wal.stat().st_size == 0, "checkpointed on close"


async def test_a_running_service_shortens_the_gil_switch_interval_and_stop_restores_it(
    settings: Settings, nats_server: NatsServer
) -> None:
    before = sys.getswitchinterval()
    app = Ekko(settings, nats_server.url)
    await app.start()
    try:
        assert sys.getswitchinterval() == SWITCH_INTERVAL_SECONDS != before
    finally:
        await app.stop()
    assert sys.getswitchinterval() == before


def test_the_switch_interval_comes_back_only_when_the_last_instance_stops() -> None:
    """Two instances may serve in one process (the tests do): the first to stop keeps it short."""
    before = sys.getswitchinterval()
    switch = _SwitchInterval()
    switch.shorten()
    switch.shorten()
    switch.restore()
    assert sys.getswitchinterval() == SWITCH_INTERVAL_SECONDS
    switch.restore()
    assert sys.getswitchinterval() == before


async def test_a_clean_stop_answers_every_request_nats_already_routed_to_it(
    settings: Settings, nats_server: NatsServer
) -> None:
    """A rolling restart: requests sent just before the stop are answered, not dropped, also
    those queued behind slow handlers (logins in bcrypt, two workers); the next request finds
    no responder instead of waiting for one that will not answer."""
    app = Ekko(dataclasses.replace(settings, bcrypt_rounds=9), nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url_for("client"))
    try:
        user = json.loads((await nc.request("ekko.users.create", json.dumps(USER).encode(), timeout=10)).data)
        wrong = json.dumps({"email": user["email"], "password": "not the password"}).encode()
        page = json.dumps({"filters": {}, "count": True, "limit": 5}).encode()
        requests = [("ekko.users.authenticate", wrong)] * 8 + [("ekko.wallets.list", page)] * 40
        requests += [("ekko.health", b"")] * 10
        replies: dict[str, Msg] = {}

        async def collect(msg: Msg) -> None:
            replies[msg.subject] = msg

        inbox = nc.new_inbox()
        await nc.subscribe(f"{inbox}.*", cb=collect)
        for n, (subject, body) in enumerate(requests):  # published one by one, so all before the flush
            await nc.publish(subject, body, reply=f"{inbox}.{n}")
        # Then the server has routed every one to the service. Twice: nats-py writes a flush's
        # PING straight to the socket, ahead of publishes still in its buffer (a CI run saw
        # all 58 answered "no responders", sent after the stop began); the buffer is written
        # while the first PING is answered, so the second PING follows the publishes.
        await nc.flush()
        await nc.flush()
        await app.stop()
        await eventually(lambda: _all_in(replies, len(requests)), timeout=20, what="a reply to each request")
        codes = [(replies[f"{inbox}.{n}"].headers or {}).get("Nats-Service-Error-Code") for n in range(len(requests))]
        assert codes == ["401"] * 8 + [None] * 50
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("ekko.health", b"", timeout=2)
    finally:
        await nc.close()


async def _all_in(replies: dict[str, Msg], count: int) -> bool:
    return len(replies) == count
