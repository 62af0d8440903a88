"""Stopping the service: it must finish promptly and leave DuckDB closed and
checkpointed, also when NATS is gone (a shutdown during an outage must not hang)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal

import nats
import nats.errors
import pytest

from schema.wallets import WalletCreate
from service.app import SWITCH_INTERVAL_SECONDS, Ekko, _SwitchInterval
from service.config import Settings
from service.store.database import connect
from tests.natsd import NatsServer


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
    """A rolling restart: requests sent just before the stop are answered, not dropped; the
    next request finds no responder instead of waiting for one that will not answer."""
    app = Ekko(settings, nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url_for("client"))
    try:
        body = json.dumps({"filters": {}, "count": True, "limit": 5}).encode()
        sent = [asyncio.create_task(nc.request("ekko.wallets.list", body, timeout=10)) for _ in range(40)]
        sent += [asyncio.create_task(nc.request("ekko.health", b"", timeout=10)) for _ in range(10)]
        await asyncio.sleep(0)  # the requests are written,
        await nc.flush()  # and the server has routed them to the service
        await app.stop()
        replies = await asyncio.gather(*sent, return_exceptions=True)
        failed = [r for r in replies if isinstance(r, BaseException)]
        assert not failed, f"{len(failed)} of {len(sent)} requests got no reply: {failed[:1]}"
        assert all(not (r.headers or {}).get("Nats-Service-Error-Code") for r in replies)
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("ekko.health", b"", timeout=2)
    finally:
        await nc.close()
