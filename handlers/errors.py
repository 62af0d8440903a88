"""The one place that turns exceptions into error replies.

FastStream logs and drops a handler's exception (and a body that fails to
decode), so the caller would time out. This middleware sees every failure of
every subscriber, including our decoders', and replies with the NATS services
error headers and a JSON body. Unexpected errors are logged with a request id
and reach the caller only as that id.

It is also the one guard on reply size: nats-server closes the connection of a
client that publishes more than max_payload (body plus headers), which would cut
the whole service off NATS. Error replies cut echoed input short; a reply that
still would not fit (an error, or a success reply in `publish_scope`) becomes a
short error that does.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import msgspec
from faststream._internal.middlewares import BaseMiddleware

from schema.common import ErrorBody, ErrorDetail, ErrorReply, encode
from service.model.errors import ServiceError
from service.model.limits import DEFAULT_MAX_PAYLOAD, LARGE_BODY, BodyBudget, header_bytes, too_large

log = logging.getLogger(__name__)

_AT = re.compile(r" - at `\$(?:\.body)?\.?(?P<path>[^`]*)`$")
MAX_TEXT = 1024  # characters of a message, field or detail kept; echoed input can be any size
MAX_DETAILS = 50
# Headers FastStream adds to a reply after publish_scope (content-type, correlation_id).
REPLY_HEADER_SLACK = 256
_LINE_BREAKS = re.compile(r"[\r\n]+")
_NAMED = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")


def _validation_reply(message: str) -> tuple[int, ErrorReply]:
    match = _AT.search(message)
    text = _AT.sub("", message)
    field = (match.group("path") or None) if match else None
    if named := _NAMED.search(text):  # msgspec names a missing or unknown field in the text, not the path
        field = f"{field}.{named.group('name')}" if field else named.group("name")
    detail = ErrorDetail(field=field, message=text)
    summary = f"{field}: {text}" if field else text
    return 400, ErrorReply(ErrorBody("validation_error", summary, [detail]))


def error_reply(exc: BaseException) -> tuple[int, ErrorReply]:
    """(status, body) for any exception a request raised."""
    if isinstance(exc, ServiceError):
        details = [ErrorDetail(field=d.field, message=d.message) for d in exc.details]
        return exc.status, ErrorReply(ErrorBody(exc.code, exc.message, details))
    if isinstance(exc, msgspec.ValidationError):
        return _validation_reply(str(exc))
    if isinstance(exc, msgspec.DecodeError):
        return 400, ErrorReply(
            ErrorBody("validation_error", "request body is not valid JSON", [ErrorDetail(message=str(exc))])
        )
    request_id = uuid.uuid4().hex[:16]
    log.error("internal error, request id %s", request_id, exc_info=exc)
    return 500, ErrorReply(ErrorBody("internal", f"internal error (request id {request_id})"))


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Echoed input cut short: a 1 MB id or field name must not be sent back whole."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters cut)"


def clipped(reply: ErrorReply) -> ErrorReply:
    error = reply.error
    details = [ErrorDetail(field=clip(d.field), message=clip(d.message) or "") for d in error.details[:MAX_DETAILS]]
    return ErrorReply(ErrorBody(error.code, clip(error.message) or "", details))


def error_headers(status: int, reply: ErrorReply) -> dict[str, str]:
    # Header values are one line: a CR or LF (echoed input may hold them) would end the header early.
    return {
        "Nats-Service-Error-Code": str(status),
        "Nats-Service-Error": _LINE_BREAKS.sub(" ", reply.error.message)[:512],
    }


def fitted_error(status: int, reply: ErrorReply, max_payload: int) -> tuple[bytes, dict[str, str]]:
    """Body and headers of an error reply that fit in max_payload (a short one when it would not)."""
    reply = clipped(reply)
    body, headers = encode(reply), error_headers(status, reply)
    if len(body) + header_bytes(headers) + REPLY_HEADER_SLACK > max_payload:
        reply = ErrorReply(ErrorBody(reply.error.code, f"{reply.error.code} (the full error reply was too large)"))
        body, headers = encode(reply), error_headers(status, reply)
    return body, headers


def _max_payload(msg: Any) -> int:
    client = getattr(msg, "_client", None)
    value = getattr(client, "max_payload", 0)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_PAYLOAD


class ErrorReplyMiddleware(BaseMiddleware):
    budget: BodyBudget | None = None  # set on the class handlers.requests.request_middleware makes

    def __init__(self, msg: Any, /, *, context: Any) -> None:
        super().__init__(msg, context=context)
        # The request's size as sent: measured before FastStream's parser runs, which may add a
        # correlation_id header (handlers.requests.parse_request).
        self.size = len(getattr(msg, "data", None) or b"") + header_bytes(getattr(msg, "headers", None))

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        """A large request counts against the in-flight budget until its handler returns
        (`take_budget`)."""
        taken = self.take_budget()
        if not taken:
            return await call_next(msg)
        try:
            return await call_next(msg)
        finally:
            self.give_back_budget(taken)

    def take_budget(self) -> int:
        """The bytes a large request (body and headers: max_payload bounds both together) took
        from the in-flight budget, 0 for a small one; past the budget it is refused (503)
        before it is decoded, raised inside the handler's scope so after_processed answers it."""
        if self.budget is None or self.size < LARGE_BODY:
            return 0
        self.budget.take(self.size)
        return self.size

    def give_back_budget(self, taken: int) -> None:
        if self.budget is not None:
            self.budget.give_back(taken)

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        """A success reply too large to publish becomes a 413 (raised here, answered by after_processed)."""
        body = getattr(cmd, "body", None)
        if isinstance(body, bytes | bytearray) and self.msg is not None:
            limit = _max_payload(self.msg) - REPLY_HEADER_SLACK
            headers = getattr(cmd, "headers", None) or {}
            size = len(body) + header_bytes(headers)
            if size > limit:
                raise too_large("the reply", size, limit)
        return await call_next(cmd)

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if exc_val is None or not isinstance(exc_val, Exception):
            return False
        await self.reply_error(exc_val)
        return True  # handled: FastStream must not log it again or swallow it silently

    async def reply_error(self, exc: Exception) -> tuple[int, ErrorReply]:
        """Send the error reply for exc; returns what was sent."""
        status, reply = error_reply(exc)
        reply_to = getattr(self.msg, "reply", None)
        if reply_to and self.msg is not None:
            body, headers = fitted_error(status, reply, _max_payload(self.msg))
            # nats-py's Msg.respond() takes no headers; publish on the message's own client.
            await self.msg._client.publish(reply_to, body, headers=headers)
        else:
            log.warning("%s on a message without reply subject: %s", reply.error.code, clip(reply.error.message))
        return status, reply
