"""Helpers for tests of the JetStream projection: wait for the relay, read the events stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from service.app import Ekko


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> float:
    """Poll `check` until true; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


async def relay_idle(ekko: Ekko, timeout: float = 20.0) -> float:
    """Wait until the relay has published every committed change (the outbox is empty)."""

    relay = ekko.relay
    assert relay is not None, "the relay runs only with ENABLE_JETSTREAM_SYNC on"

    async def drained() -> bool:
        return await relay.pending() == 0

    return await eventually(drained, timeout, what="outbox drained")


async def read_events(nc: NATS, subject: str = "ekko.events.>") -> list[dict[str, Any]]:
    """Every message in EKKO_EVENTS, in stream order."""
    return [json.loads(msg.data) for msg in await read_event_messages(nc, subject)]


async def read_event_messages(nc: NATS, subject: str = "ekko.events.>") -> list[Msg]:
    """Every message in EKKO_EVENTS (headers and body), in stream order."""
    js = nc.jetstream()
    info = await js.stream_info("EKKO_EVENTS")
    total = info.state.messages
    events: list[Msg] = []
    if total == 0:
        return events
    sub = await js.subscribe(
        subject,
        stream="EKKO_EVENTS",
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        while len(events) < total:
            msg = await sub.next_msg(timeout=5)
            events.append(msg)
    finally:
        await sub.unsubscribe()
    return events
