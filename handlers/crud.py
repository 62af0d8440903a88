"""One router factory serves create/get/update/delete/list for every entity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from faststream.nats import NatsMessage, NatsRouter

from schema.common import DeleteRequest, GetRequest, ListRequest, encode
from service.usecases.entities import EntityService


def json_decoder(request_type: type) -> Callable[[NatsMessage], Awaitable[Any]]:
    """A FastStream decoder that turns the raw body straight into `request_type`.

    Decoding bytes with a typed msgspec Decoder keeps decimals exact (no float
    detour) and reports errors with their JSON path.
    """
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(request_type)

    async def decode(msg: NatsMessage) -> Any:
        # An empty body (e.g. `nats req ekko.wallets.list ""`) means "no fields".
        return decoder.decode(msg.body or b"{}")

    return decode


def subscribe(
    router: NatsRouter, subject: str, request_type: type | None, handler: Any, *, workers: int, queue: str
) -> None:
    """`workers` subscribers in one queue group: NATS spreads requests over them, so a slow
    request of a subject does not hold up the others (FastStream runs each subscriber serially)."""
    decoder = json_decoder(request_type) if request_type is not None else None  # None: FastStream's own
    for _ in range(workers):
        router.subscriber(subject, queue=queue, decoder=decoder)(handler)


def entity_router(service: EntityService, *, prefix: str, workers: int, write_workers: int, queue: str) -> NatsRouter:
    spec = service.spec
    router = NatsRouter(prefix=f"{prefix}.{spec.name}.")

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

    for action, request_type, handler, count in (
        ("create", spec.create, create, write_workers),
        ("get", GetRequest, get, workers),
        ("update", spec.update, update, write_workers),
        ("delete", DeleteRequest, delete, write_workers),
        ("list", ListRequest, list_, workers),
    ):
        subscribe(router, action, request_type, handler, workers=count, queue=queue)
    return router
