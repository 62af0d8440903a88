"""Typed create/get/update/delete/list of one entity: one generic class serves all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from .errors import Conflict, NotFound
from .schema.common import CreateRequest, DeleteReply, DeleteRequest, GetRequest, ListRequest, Record, UpdateRequest
from .schema.events import NO_RECORD
from .schema.users import AuthenticateRequest, User, UserCreate
from .transport import Transport

R = TypeVar("R", bound=Record)
C = TypeVar("C", bound=CreateRequest)


class Page(Struct, Generic[R]):
    """One page of `<entity>.list`. Fields the service adds later are ignored, not an error."""

    items: list[R]
    next_cursor: str | None = None


_DELETE_REPLY = msgspec.json.Decoder(DeleteReply)


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

    async def list(
        self,
        *,
        filters: dict[str, Any] | None = None,
        sort: Sequence[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **options: Any,
    ) -> Page[R]:
        """One page. `options` are any further fields of the list request the service takes."""
        given = {
            "filters": filters,
            "sort": None if sort is None else list(sort),
            "limit": limit,
            "cursor": cursor,
            **options,
        }
        request = ListRequest(**{name: value for name, value in given.items() if value is not None})
        return self._page.decode(await self._ask("list", request, idempotent=True))

    async def iter(
        self,
        *,
        filters: dict[str, Any] | None = None,
        sort: Sequence[str] | None = None,
        page_size: int | None = None,
        **options: Any,
    ) -> AsyncIterator[R]:
        """Every matching record, one page at a time (`async for wallet in client.wallets.iter()`)."""
        cursor: str | None = None
        while True:
            page = await self.list(filters=filters, sort=sort, limit=page_size, cursor=cursor, **options)
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
