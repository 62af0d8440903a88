"""Change events from the `EKKO_EVENTS` stream, decoded into `ChangeEvent` Structs.

Reading the stream needs JetStream consumer rights: in the repository's nats-server.conf that
is the `reader` user, which must connect with `inbox_prefix="_INBOX_reader"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Literal

import msgspec
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from .schema.events import ChangeEvent

EVENTS_STREAM = "EKKO_EVENTS"
Start = Literal["new", "all", "last"]
_POLICIES = {"new": DeliverPolicy.NEW, "all": DeliverPolicy.ALL, "last": DeliverPolicy.LAST}
_EVENT = msgspec.json.Decoder(ChangeEvent)


class EventStream:
    """An ordered, ephemeral consumer of the stream: `async for event in stream`. Close it
    (or use `async with`) to delete the consumer; the server also drops it when idle."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        return self

    async def __anext__(self) -> ChangeEvent:
        msg = await self._subscription.next_msg(timeout=None)
        return _EVENT.decode(msg.data)

    async def next(self, timeout: float | None = None) -> ChangeEvent:
        """The next event; raises nats.errors.TimeoutError after `timeout` seconds."""
        msg = await self._subscription.next_msg(timeout=timeout)
        return _EVENT.decode(msg.data)

    async def close(self) -> None:
        await self._subscription.unsubscribe()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Events:
    def __init__(self, nc: Client, prefix: str) -> None:
        self._nc = nc
        self._subject = f"{prefix}.events"

    async def subscribe(
        self,
        entity: str = "*",
        action: str = "*",
        *,
        start: Start = "new",
        since: datetime | None = None,
        sequence: int | None = None,
    ) -> EventStream:
        """Events of `entity` (e.g. "wallets") and `action` (created, updated, deleted); "*" for
        any. From now on (`start="new"`), the whole stream ("all"), the last one ("last"), from a
        time (`since`) or a stream sequence (`sequence`)."""
        config = ConsumerConfig(deliver_policy=_POLICIES[start])
        if since is not None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        elif sequence is not None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=sequence)
        subscription = await self._nc.jetstream().subscribe(
            f"{self._subject}.{entity}.{action}", stream=EVENTS_STREAM, ordered_consumer=True, config=config
        )
        return EventStream(subscription)
