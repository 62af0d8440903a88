"""The one place that turns exceptions into error replies.

FastStream logs and drops a handler's exception (and a body that fails to
decode), so the caller would time out. This middleware sees every failure of
every subscriber, including our decoders', and replies with the NATS services
error headers and a JSON body. Unexpected errors are logged with a request id
and reach the caller only as that id.
"""

from __future__ import annotations

import logging
import re
import uuid
from types import TracebackType

import msgspec
from fast_depends.exceptions import ValidationError as DependsValidationError
from faststream._internal.middlewares import BaseMiddleware

from schema.common import ErrorBody, ErrorDetail, ErrorReply, encode
from service.model.errors import ServiceError

log = logging.getLogger(__name__)

_AT = re.compile(r" - at `\$(?:\.body)?\.?(?P<path>[^`]*)`$")
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
    if isinstance(exc, DependsValidationError) and getattr(exc, "original_error", None) is not None:
        exc = exc.original_error
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


def error_headers(status: int, reply: ErrorReply) -> dict[str, str]:
    # Header values are one line: a message with a newline would break the NATS protocol line.
    return {"Nats-Service-Error-Code": str(status), "Nats-Service-Error": reply.error.message.replace("\n", " ")[:512]}


class ErrorReplyMiddleware(BaseMiddleware):
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
        if reply_to:
            # nats-py's Msg.respond() takes no headers; publish on the message's own client.
            await self.msg._client.publish(reply_to, encode(reply), headers=error_headers(status, reply))
        else:
            log.warning("%s on a message without reply subject: %s", reply.error.code, reply.error.message)
        return status, reply
