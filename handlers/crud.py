"""One router factory serves create/get/update/delete/list for every entity."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from faststream.nats import NatsMessage, NatsRouter

from handlers.stats import Endpoints, PrefixedEndpoints
from schema.common import DeleteReply, DeleteRequest, GetRequest, encode
from service.config import Settings
from service.model.errors import invalid
from service.model.nesting import MAX_DEPTH, too_deep
from service.model.queries import list_request_of, page_of
from service.model.values import check_decimal_text
from service.usecases.entities import EntityService


def json_decoder(request_type: type, decimal_fields: tuple[str, ...] = ()) -> Callable[[NatsMessage], Awaitable[Any]]:
    """A FastStream decoder that turns the raw body straight into `request_type`.

    Decoding bytes with a typed msgspec Decoder keeps decimals exact (no float
    detour) and reports errors with their JSON path. The nesting depth is checked on the
    bytes first (service.model.nesting). `decimal_fields` sent as strings are checked as
    text, which typed decoding hides (msgspec reads " 1 " as 1): a second decoder reads
    only those fields, as sent, skipping the rest (a third of an untyped decode's cost).
    """
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(request_type)
    sent_as = msgspec.defstruct("SentAs", [(name, Any, None) for name in decimal_fields])
    texts: msgspec.json.Decoder[Any] = msgspec.json.Decoder(sent_as)

    async def decode(msg: NatsMessage) -> Any:
        # An empty body (e.g. `nats req ekko.wallets.list ""`) means "no fields".
        body = msg.body or b"{}"
        if (field := too_deep(body)) is not None:
            raise invalid(field, f"nested deeper than {MAX_DEPTH} levels of objects and arrays")
        request = decoder.decode(body)
        if decimal_fields:
            sent = texts.decode(body)  # the typed decode passed: an object with these fields as sent
            for name in decimal_fields:
                if isinstance(text := getattr(sent, name), str):
                    check_decimal_text(name, text)
        return request

    return decode


async def no_body(msg: NatsMessage) -> None:
    """The decoder of subjects that take no body: nothing, `{}` or `null` (as clients send for
    "no body"); anything else is refused before it is parsed."""
    if not _EMPTY_BODY.fullmatch(msg.body or b""):
        raise invalid("body", "this subject takes no body: send nothing or {}")


_EMPTY_BODY = re.compile(rb"\s*(?:\{\s*\}|null)?\s*")


@dataclass(frozen=True)
class Serving:
    """What every router subscribes with: the subject prefix, how many requests of a subject run
    at once (`workers` tasks for reads, `write_workers` tasks for writes, `get_workers` plain
    subscribers for get: see subscribe_decoded), the queue group, and the catalogue each subject
    is listed in."""

    prefix: str
    workers: int
    write_workers: int
    get_workers: int
    queue: str
    endpoints: Endpoints
    buffer: int | None = None  # bytes nats-py holds per subscription before it drops (None: its 128 MiB)

    @classmethod
    def from_settings(cls, settings: Settings, endpoints: Endpoints) -> Serving:
        return cls(
            prefix=settings.subject_prefix,
            workers=settings.workers_per_subject,
            write_workers=settings.write_workers_per_subject,
            get_workers=settings.get_workers_per_subject,
            queue=settings.queue_group,
            endpoints=endpoints,
            buffer=settings.subscription_buffer_bytes,
        )

    def router(self, group: str = "") -> tuple[NatsRouter, PrefixedEndpoints]:
        """A router for the subjects `<prefix>.<group>...`, and the catalogue as it sees them."""
        prefix = f"{self.prefix}.{group}"
        return NatsRouter(prefix=prefix), self.endpoints.prefixed(prefix)


def subscribe(
    router: NatsRouter,
    subject: str,
    request_type: type | None,
    handler: Any,
    *,
    workers: int,
    queue: str,
    endpoints: PrefixedEndpoints | None = None,
    reply: Any = None,
    plain: bool = False,
    buffer: int | None = None,
) -> None:
    """Subscribe `handler` with the decoder of `request_type` (None: the subject takes no body).
    `endpoints` lists the subject for `$SRV.INFO`/`$SRV.STATS` and the published contract, `reply`
    being its reply's Struct (or type, e.g. `dict[str, int]`; None: free-form). `plain`:
    see subscribe_decoded."""
    decoder = no_body if request_type is None else json_decoder(request_type)
    subscribe_decoded(router, subject, decoder, handler, workers=workers, queue=queue, plain=plain, buffer=buffer)
    if endpoints is not None:
        endpoints.add(subject, queue_group=queue, request=request_type, reply=reply)


def subscribe_decoded(
    router: NatsRouter,
    subject: str,
    decoder: Any,
    handler: Any,
    *,
    workers: int,
    queue: str,
    plain: bool = False,
    buffer: int | None = None,
) -> None:
    """`workers` requests of `subject` handled at once, in queue group `queue`.

    By default as tasks of one subscriber (FastStream's `max_workers`): a request starts as
    soon as fewer than `workers` run. With one subscriber per worker instead, NATS hands a
    request to any member of the queue group, busy or not, and FastStream runs each
    subscriber's requests one after another: a short list would wait behind a long report
    while other subscribers idle (decision 48). Hundreds of plain subscribers would also cost
    start time, memory and GC pauses (decision 42).

    `plain`: `workers` plain subscribers, for a subject whose requests are mostly shorter than
    a task costs (a cached `get`: as tasks, half the rate, decision 42).

    `buffer`: bytes of requests nats-py holds per subscription while its workers are busy;
    past them it drops each further one, which handlers.dropped answers 503 (decision 57)."""
    handler = _taking_the_body(handler)
    if not plain and workers > 1:
        router.subscriber(subject, queue=queue, decoder=decoder, max_workers=workers, pending_bytes_limit=buffer)(
            handler
        )
        return
    # The decorator returns FastStream's wrapper of the handler; passing it on (as stacked
    # decorators do) lets the other subscribers share it instead of each building one (and its
    # MagicMock call recorder): ~40% of start time with 32 `get` subscribers per entity.
    for _ in range(workers):
        handler = router.subscriber(subject, queue=queue, decoder=decoder, pending_bytes_limit=buffer)(handler)


def _taking_the_body(handler: Any) -> Any:
    """FastStream calls every handler with the decoded body: the broker runs without dependency
    injection (`apply_types=False`, decision 52). A handler of a subject that takes no body
    gets it through this, and drops it."""
    if inspect.signature(handler).parameters:
        return handler

    async def call(_body: Any) -> Any:
        return await handler()

    call.__name__, call.__qualname__, call.__doc__ = handler.__name__, handler.__qualname__, handler.__doc__
    return call


def entity_router(service: EntityService, serving: Serving) -> NatsRouter:
    spec = service.spec
    router, listed = serving.router(f"{spec.name}.")
    record = spec.record
    workers, write_workers, get_workers = serving.workers, serving.write_workers, serving.get_workers
    queue = serving.queue

    async def create(body: Any) -> bytes:
        return encode(await service.create(body))

    async def get(body: Any) -> bytes:
        return await service.get_encoded(body.id)

    async def update(body: Any) -> bytes:
        return encode(await service.update(body))

    async def delete(body: Any) -> bytes:
        return encode(await service.delete(body))

    async def list_(body: Any) -> bytes:
        return encode(await service.list(body))

    decimals = spec.decimal_fields
    # Writes wait for their group commit and lists for a read, as tasks of one subscriber; a
    # get that misses the cache waits for a read shared with the other misses
    # (service.usecases.batching), but a hit is too short to pay for a task, so gets are plain
    # subscribers, more of them than the other subjects' tasks.
    for action, request_type, handler, count, plain, checked, reply in (
        ("create", spec.create, create, write_workers, False, decimals, record),
        ("get", GetRequest, get, get_workers, True, (), record),
        ("update", spec.update, update, write_workers, False, decimals, record),
        ("delete", DeleteRequest, delete, write_workers, False, (), DeleteReply),
        # ListRequest with this entity's filters and sort keys typed (for the schema; it decodes alike)
        ("list", list_request_of(spec), list_, workers, False, (), page_of(record)),
    ):
        decoder = json_decoder(request_type, checked)
        subscribe_decoded(
            router, action, decoder, handler, workers=count, queue=queue, plain=plain, buffer=serving.buffer
        )
        listed.add(action, queue_group=queue, request=request_type, reply=reply)
    return router
