"""JetStream as a projection of DuckDB: one KV bucket per entity (legacy names) and
the EKKO_EVENTS stream. Knows nothing of DuckDB; service.relay feeds it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from schema.common import encode
from schema.events import ChangeEvent
from service.outbox import Change
from service.registry import ENTITY_ORDER

log = logging.getLogger(__name__)

EVENTS_STREAM = "EKKO_EVENTS"
PIPELINE = 256  # publishes in flight at once; order on one connection is preserved
T = TypeVar("T")


class JetStreamSync:
    def __init__(self, js: JetStreamContext, *, subject_prefix: str = "ekko", duplicate_window: float = 600.0) -> None:
        self.js = js
        self.events_subject = f"{subject_prefix}.events"
        self.duplicate_window = duplicate_window
        self._kv: dict[str, KeyValue] = {}

    async def ensure(self) -> set[str]:
        """Create missing buckets and the events stream. Returns the entities whose bucket was created."""
        created = set()
        for name in ENTITY_ORDER:
            try:
                self._kv[name] = await self.js.key_value(name)
            except BucketNotFoundError:
                self._kv[name] = await self.js.create_key_value(KeyValueConfig(bucket=name, history=1))
                created.add(name)
                log.info("created KV bucket %s", name)
        config = StreamConfig(
            name=EVENTS_STREAM, subjects=[f"{self.events_subject}.>"], duplicate_window=self.duplicate_window
        )
        try:
            await self.js.stream_info(EVENTS_STREAM)
        except NotFoundError:
            await self.js.add_stream(config)
            log.info("created stream %s", EVENTS_STREAM)
        return created

    async def publish(self, changes: Sequence[Change]) -> None:
        """KV first (latest change per key only, so a retried batch never rolls a key back),
        then one event per change in order. Raises on the first failure; the caller retries all."""
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            latest[(change.entity, change.entity_id)] = change
        await pipelined(self._kv_write, list(latest.values()))
        await pipelined(self._event, changes)

    async def _kv_write(self, change: Change) -> None:
        kv = self._kv[change.entity]
        if change.data is None:
            await kv.delete(change.entity_id)
        else:
            await kv.put(change.entity_id, change.data)

    async def _event(self, change: Change) -> None:
        event = ChangeEvent(
            event_id=change.event_id,
            entity=change.entity,
            action=change.action,
            id=change.entity_id,
            version=change.version,
            occurred_at=change.occurred_at,
            data=None if change.data is None else msgspec.Raw(change.data),
        )
        await self.js.publish(
            f"{self.events_subject}.{change.entity}.{change.action}",
            encode(event),
            stream=EVENTS_STREAM,
            headers={"Nats-Msg-Id": change.event_id},
        )

    def bucket(self, entity: str) -> KeyValue:
        return self._kv[entity]


async def pipelined(send: Callable[[T], Awaitable[object]], items: Sequence[T]) -> None:
    """send(item) for every item, PIPELINE of them in flight at once (JetStream acks each)."""
    for start in range(0, len(items), PIPELINE):
        await asyncio.gather(*(send(item) for item in items[start : start + PIPELINE]))
