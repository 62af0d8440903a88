"""JetStream publishes that share one reply subscription: the relay's fast path.

nats-py's `js.publish` is a request per message (its own future, an `asyncio.wait_for`
timer, `json.loads` and a PubAck dataclass): ~43 us of CPU per message on the build
machine, and the relay sends two per change. `js.publish_async` shares a reply
subscription (~24 us) but loses API errors: its reply handler calls
`APIError.from_error`, which raises instead of returning, so the future is never
resolved and a permanent refusal looks like a timeout. Here a window of messages is
published with one reply subject each under one inbox, their acks decoded by msgspec and
awaited together under one deadline: ~13 us per message (docs/decisions.md 41). Errors
are nats-py's own exception types, so callers handle them as before.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError, NoStreamResponseError

WINDOW = 256  # messages in flight at once; one connection keeps their order
TIMEOUT = 5.0  # seconds for a window's acks (nats-py's JetStream default per message)
_STATUS = "Status"
_NO_RESPONDERS = "503"

Message = tuple[str, bytes, dict[str, str] | None]  # subject, body, headers


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


class AckedPublisher:
    """Publishes to JetStream and waits for every ack, WINDOW messages at a time. Made per
    connection (`start` subscribes to its reply inbox; nats-py renews it on reconnect)."""

    def __init__(self, nc: Client, timeout: float = TIMEOUT) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = ""
        self._sub: Subscription | None = None
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._sub is not None and not self._nc.is_closed:
            await self._sub.unsubscribe()
        self._sub = None

    async def publish(self, messages: Sequence[Message]) -> None:
        """Each message stored by JetStream, in order; raises the first failure (nats-py's
        APIError for a refusal, NoStreamResponseError when no stream takes the subject,
        TimeoutError when acks do not come). Some may be stored when it raises."""
        assert self._sub is not None, "AckedPublisher.start() first"
        for start in range(0, len(messages), WINDOW):
            await self._window(messages[start : start + WINDOW])

    async def _window(self, messages: Sequence[Message]) -> None:
        loop = asyncio.get_running_loop()
        tokens: list[str] = []
        try:
            for subject, body, headers in messages:
                token = str(next(self._tokens))
                self._waiting[token] = loop.create_future()
                tokens.append(token)
                await self._nc.publish(subject, body, reply=f"{self._prefix}.{token}", headers=headers)
            replies = await asyncio.wait_for(asyncio.gather(*(self._waiting[t] for t in tokens)), self._timeout)
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
        for reply in replies:
            _check(reply)

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix) + 1 :])
        if future is not None and not future.done():
            future.set_result(msg)


def _check(reply: Msg) -> None:
    """Raise what nats-py's js.publish raises for this reply; nothing for a stored message."""
    if not reply.data:
        status = (reply.headers or {}).get(_STATUS)
        if status == _NO_RESPONDERS:
            raise NoStreamResponseError
        raise APIError(code=int(status) if status and status.isdigit() else None, description="no ack")
    try:
        ack = _decode_ack(reply.data)
    except msgspec.DecodeError as exc:
        raise APIError(description=f"unreadable ack: {exc}") from None
    if ack.error is not None:
        error = ack.error
        raise APIError(code=error.code, err_code=error.err_code, description=error.description)
