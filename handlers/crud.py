"""One router factory serves create/get/update/delete/list for every entity."""

from __future__ import annotations

from typing import Any

import msgspec
from faststream.nats import NatsMessage, NatsRouter

from handlers.stats import Endpoints, PrefixedEndpoints
from schema.common import DeleteReply, DeleteRequest, GetRequest, ListRequest, encode
from service.usecases.entities import EntityService


def json_decoder(request_type: type) -> Any:
    """A FastStream decoder that turns the raw body straight into `request_type`.

    Decoding bytes with a typed msgspec Decoder keeps decimals exact (no float
    detour) and reports errors with their JSON path.
    """
    decoder = msgspec.json.Decoder(request_type)

    async def decode(msg: NatsMessage) -> Any:
        # An empty body (e.g. `nats req ekko.wallets.list ""`) means "no fields".
        return decoder.decode(msg.body or b"{}")

    return decode


def subscribe(
    router: NatsRouter,
    subject: str,
    request_type: type | None,
    handler: Any,
    *,
    workers: int,
    queue: str,
    endpoints: PrefixedEndpoints | None = None,
    reply: str | None = None,
) -> None:
    """`workers` subscribers in one queue group: NATS spreads requests over them, so a slow
    request of a subject does not hold up the others (FastStream runs each subscriber serially).
    `endpoints` lists the subject for `$SRV.INFO`/`$SRV.STATS`, `reply` naming its reply schema."""
    options = {"decoder": json_decoder(request_type)} if request_type is not None else {}
    for _ in range(workers):
        router.subscriber(subject, queue=queue, **options)(handler)
    if endpoints is not None:
        request = request_type.__name__ if request_type is not None else None
        endpoints.add(subject, queue_group=queue, request=request, reply=reply)


def entity_router(
    service: EntityService, *, prefix: str, workers: int, write_workers: int, queue: str, endpoints: Endpoints
) -> NatsRouter:
    spec = service.spec
    router = NatsRouter(prefix=f"{prefix}.{spec.name}.")
    listed = endpoints.prefixed(f"{prefix}.{spec.name}.")
    record = spec.record.__name__

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

    for action, request_type, handler, count, reply in (
        ("create", spec.create, create, write_workers, record),
        ("get", GetRequest, get, workers, record),
        ("update", spec.update, update, write_workers, record),
        ("delete", DeleteRequest, delete, write_workers, DeleteReply.__name__),
        ("list", ListRequest, list_, workers, f"{record}Page"),  # as docs/schemas.json names a page
    ):
        subscribe(router, action, request_type, handler, workers=count, queue=queue, endpoints=listed, reply=reply)
    return router
