"""JetStream as a projection of DuckDB: one KV bucket per entity (legacy names) and
the EKKO_EVENTS stream. Knows nothing of DuckDB; service.sync.relay feeds it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from schema.common import encode
from schema.events import NO_RECORD, ChangeEvent
from service.model.limits import ENVELOPE_RESERVE, header_bytes
from service.model.registry import ENTITY_ORDER
from service.store.outbox import Change

log = logging.getLogger(__name__)

EVENTS_STREAM = "EKKO_EVENTS"
# The headers of every event on the stream (docs/asyncapi.json documents exactly these; a test
# reads real events and fails on a header not listed here).
EVENT_HEADERS = {
    "Nats-Msg-Id": {
        "type": "string",
        "description": "the event_id: JetStream drops a repeat within the duplicate window",
    },
    "Nats-Expected-Stream": {"type": "string", "const": EVENTS_STREAM, "description": "the stream the event is for"},
}
OPTIONAL_EVENT_HEADERS: frozenset[str] = frozenset()  # of EVENT_HEADERS, those only some events carry
PIPELINE = 256  # publishes in flight at once; order on one connection is preserved
T = TypeVar("T")
# JetStream API errors a retry cannot change: the bucket or stream has a max message size
# smaller than this value (legacy buckets may set max_value_size).
PERMANENT_API_ERRORS = frozenset({10054})  # JSStreamMessageExceedsMaximumErr
# A KV key as nats-py accepts it (nats.js.kv refuses any other with InvalidKeyError).
KV_KEY = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def kv_refusal(key: str, value: bytes | None, max_payload: int) -> str | None:
    """Why KV can never take this put (or delete), or None. Retrying would not change it."""
    if not KV_KEY.match(key) or key.startswith(".") or key.endswith("."):
        return f"{key[:80]!r} is not a valid KV key"
    if value is not None and len(value) > max_payload:
        return f"KV value is {len(value)} bytes; max_payload is {max_payload}"
    return None


class JetStreamNotAttached(Exception):
    """JetStream was asked for before `attach` connected it (or after the service stopped)."""


class JetStreamSync:
    """The KV buckets and the events stream. Built once with its settings; `attach` gives it
    the live NATS connection (which exists only once the broker has connected)."""

    def __init__(self, *, subject_prefix: str = "ekko", duplicate_window: float = 600.0) -> None:
        self.events_subject = f"{subject_prefix}.events"
        self.duplicate_window = duplicate_window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, KeyValue] = {}

    async def attach(self, nc: Client) -> set[str]:
        """Use this connection; create missing buckets and the stream (returns the created buckets)."""
        self._nc, self._js = nc, nc.jetstream()
        return await self.ensure()

    @property
    def attached(self) -> bool:
        return self._nc is not None

    @property
    def connection(self) -> Client:
        if self._nc is None:
            raise JetStreamNotAttached("JetStream is not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise JetStreamNotAttached("JetStream is not connected")
        return self._js

    async def ensure(self) -> set[str]:
        """Create missing buckets and the events stream. Returns the entities whose bucket was created."""
        created = set()
        js = self.js
        for name in ENTITY_ORDER:
            try:
                self._kv[name] = await js.key_value(name)
            except BucketNotFoundError:
                self._kv[name] = await js.create_key_value(KeyValueConfig(bucket=name, history=1))
                created.add(name)
                log.info("created KV bucket %s", name)
        config = StreamConfig(
            name=EVENTS_STREAM, subjects=[f"{self.events_subject}.>"], duplicate_window=self.duplicate_window
        )
        try:
            await js.stream_info(EVENTS_STREAM)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", EVENTS_STREAM)
        return created

    async def missing_buckets(self) -> set[str]:
        """The entities whose KV bucket does not exist (deleted at run time, say)."""

        async def missing(name: str) -> bool:
            try:
                await self.js.stream_info(f"KV_{name}")
            except NotFoundError:
                return True
            return False

        found = await asyncio.gather(*(missing(name) for name in ENTITY_ORDER))
        return {name for name, gone in zip(ENTITY_ORDER, found, strict=True) if gone}

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

    def unpublishable(self, change: Change, max_payload: int) -> str | None:
        """Why this change can never be published (its KV value or its event is too large for
        max_payload, or its id is no KV key), or None. Checked before publishing: nats-server
        closes the connection of a client that sends more than max_payload, headers included."""
        if refusal := kv_refusal(change.entity_id, change.data, max_payload):
            return refusal
        if change.data is not None and len(change.data) > max_payload - ENVELOPE_RESERVE:  # else it fits surely
            body, headers = self._event_message(change)
            size = len(body) + header_bytes(headers)
            if size > max_payload:
                return f"event is {size} bytes with its headers; max_payload is {max_payload}"
        return None

    def _event_message(self, change: Change) -> tuple[bytes, dict[str, str]]:
        event = ChangeEvent(
            event_id=change.event_id,
            entity=change.entity,
            action=change.action,
            id=change.entity_id,
            version=change.version,
            occurred_at=change.occurred_at,
            data=NO_RECORD if change.data is None else msgspec.Raw(change.data),
        )
        # js.publish(stream=...) adds Nats-Expected-Stream; counted here so sizes are exact.
        return encode(event), {"Nats-Msg-Id": change.event_id, "Nats-Expected-Stream": EVENTS_STREAM}

    async def _event(self, change: Change) -> None:
        body, headers = self._event_message(change)
        await self.js.publish(
            f"{self.events_subject}.{change.entity}.{change.action}",
            body,
            stream=EVENTS_STREAM,
            headers={"Nats-Msg-Id": headers["Nats-Msg-Id"]},
        )

    def bucket(self, entity: str) -> KeyValue:
        return self._kv[entity]


async def pipelined(send: Callable[[T], Awaitable[object]], items: Sequence[T]) -> None:
    """send(item) for every item, PIPELINE of them in flight at once (JetStream acks each)."""
    for start in range(0, len(items), PIPELINE):
        await asyncio.gather(*(send(item) for item in items[start : start + PIPELINE]))
