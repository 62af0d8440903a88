"""A JSON request helper over a real NATS connection, for integration tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from nats.aio.client import Client as NATS


@dataclass
class Reply:
    status: int  # 200 for success, else Nats-Service-Error-Code
    body: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


@dataclass
class Client:
    """`nc` is the connection requests go over. With `admin_nc`, requests on `*.admin.*`
    subjects go over that one instead (nats-server.conf lets only `admin` ask them), so a
    test reads like an operator's session: a client for data, an admin for admin work."""

    nc: NATS
    admin_nc: NATS | None = None

    def _connection(self, subject: str) -> NATS:
        if self.admin_nc is not None and subject.split(".")[1:2] == ["admin"]:
            return self.admin_nc
        return self.nc

    async def raw(
        self, subject: str, payload: bytes, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> Reply:
        msg = await self._connection(subject).request(subject, payload, timeout=timeout, headers=headers)
        headers = dict(msg.headers or {})
        status = int(headers.get("Nats-Service-Error-Code", 200))
        return Reply(status, json.loads(msg.data) if msg.data else None, headers)

    async def request(
        self, subject: str, body: Any = None, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> Reply:
        return await self.raw(subject, b"" if body is None else json.dumps(body).encode(), timeout, headers)

    async def ok(self, subject: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        """The reply body; fails the test with the error when the reply is an error."""
        reply = await self.request(subject, body, headers=headers)
        assert reply.ok, f"{subject} -> {reply.status} {reply.body}"
        return reply.body


def assert_rejected(reply: Reply, status: int, field: str | None = None) -> None:
    """An error reply with this status, naming `field` in its details when given."""
    assert reply.status == status, reply.body
    if field is not None:
        assert field in [d.get("field") for d in reply.error["details"]], reply.error


def as_sent(value: Any) -> Any:
    """A typed reply as the JSON the service sends: money as fixed-point text ("0.00000000"),
    timestamps as ISO text."""
    return fixed_point(msgspec.to_builtins(value, builtin_types=(Decimal,)))


def fixed_point(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: fixed_point(item) for key, item in value.items()}
    if isinstance(value, list):
        return [fixed_point(item) for item in value]
    return value
