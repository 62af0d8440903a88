"""JetStream as a projection of DuckDB: one KV bucket per entity (legacy names) and
the EKKO_EVENTS stream. Knows nothing of DuckDB; service.sync.relay feeds it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_OP, KeyValue

from schema.common import encode
from schema.events import (
    ACTION_HEADER,
    CORRELATION_HEADER,
    ENTITY_HEADER,
    ENTITY_ID_HEADER,
    NO_RECORD,
    TX_COUNT_HEADER,
    TX_ID_HEADER,
    TX_INDEX_HEADER,
    VERSION_HEADER,
    ChangeEvent,
)
from service.config import Settings
from service.model.limits import ENVELOPE_RESERVE, header_bytes
from service.model.registry import ENTITY_ORDER
from service.store.outbox import Change
from service.sync.acks import AckedPublisher, Message

log = logging.getLogger(__name__)

EVENTS_STREAM = "EKKO_EVENTS"
# The headers of every event on the stream (docs/asyncapi.json documents exactly these; a test
# reads real events and fails on a header not listed here).
EVENT_HEADERS: dict[str, dict[str, Any]] = {
    "Nats-Msg-Id": {
        "type": "string",
        "description": "the event_id: JetStream drops a repeat within the duplicate window",
    },
    "Nats-Expected-Stream": {"type": "string", "const": EVENTS_STREAM, "description": "the stream the event is for"},
    ENTITY_HEADER: {"type": "string", "description": "the entity (as `entity` in the body)"},
    ACTION_HEADER: {"type": "string", "enum": ["created", "updated", "deleted"], "description": "as `action`"},
    ENTITY_ID_HEADER: {"type": "string", "description": "the record's id (as `id`)"},
    VERSION_HEADER: {"type": "string", "pattern": "^[0-9]+$", "description": "as `version`, in decimal"},
    TX_ID_HEADER: {"type": "string", "description": "the write the event belongs to (as `tx_id`)"},
    TX_INDEX_HEADER: {"type": "string", "pattern": "^[0-9]+$", "description": "as `tx_index`, in decimal"},
    TX_COUNT_HEADER: {"type": "string", "pattern": "^[0-9]+$", "description": "as `tx_count`, in decimal"},
    CORRELATION_HEADER: {
        "type": "string",
        "description": "the Ekko-Correlation-Id of the request that made the change (as `correlation_id`)",
    },
}
OPTIONAL_EVENT_HEADERS: frozenset[str] = frozenset({CORRELATION_HEADER})  # of EVENT_HEADERS, only some events
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

    def __init__(
        self,
        *,
        subject_prefix: str = "ekko",
        duplicate_window: float = 600.0,
        max_age: float = 0.0,
        max_bytes: int = 0,
    ) -> None:
        self.events_subject = f"{subject_prefix}.events"
        self.duplicate_window = duplicate_window
        self.max_age = max_age  # seconds the stream keeps an event; 0: no limit
        self.max_bytes = max_bytes if max_bytes > 0 else -1  # the stream's size cap (JetStream: -1, none)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, KeyValue] = {}
        self._publisher: AckedPublisher | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> JetStreamSync:
        return cls(
            subject_prefix=settings.subject_prefix,
            duplicate_window=settings.events_duplicate_window,
            max_age=settings.events_max_age,
            max_bytes=settings.events_max_bytes,
        )

    async def attach(self, nc: Client) -> set[str]:
        """Use this connection; create missing buckets and the stream (returns the created buckets)."""
        self._nc, self._js = nc, nc.jetstream()
        if self._publisher is not None:
            await self._publisher.stop()
        self._publisher = AckedPublisher(nc)
        await self._publisher.start()
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
        await self._ensure_stream()
        return created

    async def _ensure_stream(self) -> None:
        """Create the events stream, or bring an existing one's retention to the settings
        (its other settings are left as they are)."""
        try:
            info = await self.js.stream_info(EVENTS_STREAM)
        except NotFoundError:
            config = StreamConfig(
                name=EVENTS_STREAM,
                subjects=[f"{self.events_subject}.>"],
                duplicate_window=self.duplicate_window,
                max_age=self.max_age,
                max_bytes=self.max_bytes,
            )
            await self.js.add_stream(config)
            log.info("created stream %s", EVENTS_STREAM)
            return
        config = info.config
        if (config.max_age or 0.0) != self.max_age or (config.max_bytes or -1) != self.max_bytes:
            await self.js.update_stream(dataclasses.replace(config, max_age=self.max_age, max_bytes=self.max_bytes))
            log.info(
                "stream %s retention set to max_age %ss, max_bytes %d", EVENTS_STREAM, self.max_age, self.max_bytes
            )

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
        if self._publisher is None:
            raise JetStreamNotAttached("JetStream is not connected")
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            latest[(change.entity, change.entity_id)] = change
        await self._publisher.publish([kv_message(change) for change in latest.values()])
        max_payload = self.connection.max_payload
        await self._publisher.publish([self._event(change, max_payload) for change in changes])

    def unpublishable(self, change: Change, max_payload: int) -> str | None:
        """Why this change can never be published (its KV value or its event is too large for
        max_payload, or its id is no KV key), or None. Checked before publishing: nats-server
        closes the connection of a client that sends more than max_payload, headers included."""
        if refusal := kv_refusal(change.entity_id, change.data, max_payload):
            return refusal
        if variable_bytes(change) <= max_payload - ENVELOPE_RESERVE:
            return None  # the rest of the envelope is smaller than the reserve: it fits surely
        body, headers = event_message(change, max_payload)
        if (size := message_size(body, headers)) > max_payload:
            return f"event is {size} bytes with its headers; max_payload is {max_payload}"
        return None

    def _event(self, change: Change, max_payload: int) -> Message:
        body, headers = event_message(change, max_payload)
        headers["Nats-Expected-Stream"] = EVENTS_STREAM
        return f"{self.events_subject}.{change.entity}.{change.action}", body, headers

    def bucket(self, entity: str) -> KeyValue:
        return self._kv[entity]


def kv_message(change: Change) -> Message:
    """The KV put (or delete) of a change, as nats-py's KeyValue.put/delete sends it: the
    bucket is the entity's, the key its id."""
    subject = f"$KV.{change.entity}.{change.entity_id}"
    if change.data is None:
        return subject, b"", {KV_OP: KV_DEL}
    return subject, change.data, None


def variable_bytes(change: Change) -> int:
    """The bytes of an event that vary between changes (records, and the id and correlation
    id, which are in the body and the headers); the rest fits in ENVELOPE_RESERVE."""
    records = len(change.data or b"") + len(change.before or b"")
    return records + 2 * (len(change.entity_id) + len(change.correlation_id or ""))


def event_headers(change: Change) -> dict[str, str]:
    """The headers of a change's event. Every value is one line of visible ASCII: names come
    from the registry, numbers are numbers, entity ids passed kv_refusal (a KV key's
    characters) and correlation ids were checked on the way in."""
    headers = {
        "Nats-Msg-Id": change.event_id,
        ENTITY_HEADER: change.entity,
        ACTION_HEADER: change.action,
        ENTITY_ID_HEADER: change.entity_id,
        VERSION_HEADER: str(change.version),
        TX_ID_HEADER: change.tx_id or change.event_id,
        TX_INDEX_HEADER: str(change.tx_index),
        TX_COUNT_HEADER: str(change.tx_count),
    }
    if change.correlation_id is not None:
        headers[CORRELATION_HEADER] = change.correlation_id
    return headers


def change_event(change: Change, *, with_before: bool = True) -> ChangeEvent:
    before = change.before if with_before else None
    return ChangeEvent(
        event_id=change.event_id,
        entity=change.entity,
        action=change.action,
        id=change.entity_id,
        version=change.version,
        occurred_at=change.occurred_at,
        data=NO_RECORD if change.data is None else msgspec.Raw(change.data),
        before=NO_RECORD if before is None else msgspec.Raw(before),
        before_omitted=before is None and change.before is not None,
        tx_id=change.tx_id or change.event_id,
        tx_index=change.tx_index,
        tx_count=change.tx_count,
        correlation_id=change.correlation_id,
    )


def message_size(body: bytes, headers: dict[str, str]) -> int:
    """What the server counts against max_payload; js.publish(stream=...) adds Nats-Expected-Stream."""
    return len(body) + header_bytes({**headers, "Nats-Expected-Stream": EVENTS_STREAM})


def event_message(change: Change, max_payload: int) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a change's event. An update whose before and after images together
    would not fit in max_payload goes without `before` (before_omitted: true): the after image
    alone is what KV holds and always fits (service.model.limits checks it before commit)."""
    headers = event_headers(change)
    body = encode(change_event(change))
    near_limit = variable_bytes(change) > max_payload - ENVELOPE_RESERVE  # else it fits surely
    if change.before is not None and near_limit and message_size(body, headers) > max_payload:
        body = encode(change_event(change, with_before=False))
    return body, headers


async def pipelined(send: Callable[[T], Awaitable[object]], items: Sequence[T]) -> None:
    """send(item) for every item, PIPELINE of them in flight at once (JetStream acks each)."""
    for start in range(0, len(items), PIPELINE):
        await asyncio.gather(*(send(item) for item in items[start : start + PIPELINE]))
