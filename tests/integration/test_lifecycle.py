"""Stopping the service: it must finish promptly and leave DuckDB closed and
checkpointed, also when NATS is gone (a shutdown during an outage must not hang)."""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

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
