"""Typed create/get/update/delete/list of one entity: one generic class serves all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar, Unpack, overload

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from .errors import Conflict, NotFound
from .listing import JsonObject, Names, PageOptions, Walk, list_request
from .schema.common import CreateRequest, DeleteReply, DeleteRequest, GetRequest, Record, UpdateRequest
from .schema.events import NO_RECORD
from .schema.users import AuthenticateRequest, User, UserCreate
from .transport import Transport

R = TypeVar("R", bound=Record)
Item = TypeVar("Item")
C = TypeVar("C", bound=CreateRequest)


class Page(Struct, Generic[Item]):
    """One page of `<entity>.list`: `total` is the number of rows matching the filters when
    the request asked for `count`, else None. Fields the service adds later are ignored."""

    items: list[Item]
    next_cursor: str | None = None
    total: int | None = None


_DELETE_REPLY = msgspec.json.Decoder(DeleteReply)
# With `select` or `include` an item is not a whole record: it stays the JSON object it is.
_OBJECT_PAGE: msgspec.json.Decoder[Page[JsonObject]] = msgspec.json.Decoder(Page[JsonObject])


class Entity(Generic[R, C]):
    """`ekko.<name>.*` with replies decoded into `record` (e.g. `Wallet`).

    `subject` is the subject stem after the prefix: `wallets`, or `admin.users` for the admin
    subjects that create and update users."""

    def __init__(
        self, transport: Transport, subject: str, record: type[R], create: type[C], update: type[UpdateRequest]
    ) -> None:
        self._transport = transport
        self.subject = subject
        self.record_type = record
        self.create_type = create
        self.update_type = update
        self._record: msgspec.json.Decoder[R] = msgspec.json.Decoder(record)
        self._page: msgspec.json.Decoder[Page[R]] = msgspec.json.Decoder(Page[record])  # type: ignore[valid-type]

    async def _ask(self, action: str, body: Any, *, idempotent: bool) -> bytes:
        return await self._transport.request(f"{self.subject}.{action}", body, idempotent=idempotent)

    async def get(self, id: str) -> R:
        """The record with this id; raises NotFound."""
        return self._record.decode(await self._ask("get", GetRequest(id), idempotent=True))

    async def create(self, body: C | None = None, /, **fields: Any) -> R:
        """Create from a `<Entity>Create` Struct or its fields as keyword arguments.

        Without an `id` the service generates one, and a create that timed out is not sent
        again (it may have been applied). With your own `id` it is retried like a read: when a
        retry meets 409 because the timed-out attempt did land, the record is read back."""
        request = body if body is not None else self.create_type(**fields)
        if isinstance(request.id, UnsetType):
            return self._record.decode(await self._ask("create", request, idempotent=False))
        try:
            return self._record.decode(await self._ask("create", request, idempotent=True))
        except Conflict as conflict:
            if conflict.timeouts == 0:
                raise
            try:
                return await self.get(request.id)
            except NotFound:
                raise conflict from None  # the conflict was another one (a unique key)

    async def update(self, target: str | UpdateRequest, /, **fields: Any) -> R:
        """Change the fields given (`expected_version=` makes it conditional): `update(id,
        name="x")`, or an `<Entity>Update` Struct. Not retried after a timeout."""
        request = self.update_type(id=target, **fields) if isinstance(target, str) else target
        return self._record.decode(await self._ask("update", request, idempotent=False))

    async def delete(self, id: str, *, cascade: bool = False, expected_version: int | UnsetType = UNSET) -> DeleteReply:
        """Delete the record (`cascade=True`: its children too). Not retried after a timeout."""
        request = DeleteRequest(id, cascade=cascade, expected_version=expected_version)
        return _DELETE_REPLY.decode(await self._ask("delete", request, idempotent=False))

    @overload
    async def list(self, *, select: None = None, include: None = None, **options: Unpack[PageOptions]) -> Page[R]: ...
    @overload
    async def list(
        self, *, select: Names, include: Names | None = None, **options: Unpack[PageOptions]
    ) -> Page[JsonObject]: ...
    @overload
    async def list(
        self, *, select: Names | None = None, include: Names, **options: Unpack[PageOptions]
    ) -> Page[JsonObject]: ...
    async def list(
        self, *, select: Names | None = None, include: Names | None = None, **options: Unpack[PageOptions]
    ) -> Page[Any]:
        """One page (`filters`, `sort`, `limit`, `cursor`, `count`: see `PageOptions`): `items`
        are records, or with `select`/`include` plain JSON objects shaped as asked;
        `next_cursor`; `total` (the rows matching `filters`) when `count=True`."""
        request = list_request(select, include, options)
        decoder = self._page if select is None and include is None else _OBJECT_PAGE
        return decoder.decode(await self._ask("list", request, idempotent=True))

    @overload
    def iter(
        self, *, page_size: int | None = None, select: None = None, include: None = None, **options: Unpack[Walk]
    ) -> AsyncIterator[R]: ...
    @overload
    def iter(
        self, *, page_size: int | None = None, select: Names, include: Names | None = None, **options: Unpack[Walk]
    ) -> AsyncIterator[JsonObject]: ...
    @overload
    def iter(
        self, *, page_size: int | None = None, select: Names | None = None, include: Names, **options: Unpack[Walk]
    ) -> AsyncIterator[JsonObject]: ...
    async def iter(
        self,
        *,
        page_size: int | None = None,
        select: Names | None = None,
        include: Names | None = None,
        **options: Unpack[Walk],
    ) -> AsyncIterator[Any]:
        """Every matching item, one page of `page_size` at a time (`async for wallet in
        client.wallets.iter(filters=...)`): records, or JSON objects with `select`/`include`."""
        cursor: str | None = None
        while True:
            page = await self.list(select=select, include=include, limit=page_size, cursor=cursor, **options)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def decode(self, data: bytes | Raw) -> R | None:
        """A record as replies, KV values and events carry it (an event's `data`); None for
        an event's null (a delete has no record after it)."""
        return None if data == NO_RECORD else self._record.decode(data)


class Users(Entity[User, UserCreate]):
    """Users, plus `users.authenticate`."""

    async def authenticate(self, email: str, password: str) -> User:
        """The user when email and password match; raises Unauthorized (or TooManyAttempts).
        Not retried after a timeout: a retry would count as a second failed login."""
        body = AuthenticateRequest(email, password)
        return self._record.decode(await self._ask("authenticate", body, idempotent=False))
