"""One exception class per error reply of ekko, chosen by its `Nats-Service-Error-Code` header.

Every error reply carries that header (400, 404, ...) and a body
`{"error": {"code", "message", "details"}}`; a successful reply never has the header.
A status this client does not know still raises the base `EkkoError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .schema.common import ErrorDetail, ErrorReply

__all__ = [
    "Conflict",
    "EkkoError",
    "Forbidden",
    "InsufficientStorage",
    "InternalError",
    "InvalidRequest",
    "NoResponders",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "TooManyAttempts",
    "Unauthorized",
    "Unavailable",
    "error_from_reply",
]

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"


class EkkoError(Exception):
    """An error reply (or a request that got none). `status` is the Nats-Service-Error-Code,
    `code` the body's `error.code` (e.g. "not_found"), `details` its field/message pairs."""

    status: int | None = None
    code: str = "error"
    attempts: int = 1
    """How often the request was sent (retries included)."""
    timeouts: int = 0
    """How many of those attempts got no reply: with more than 0, a write may have been applied."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[ErrorDetail] | None = None,
        status: int | None = None,
        subject: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or []
        if status is not None:
            self.status = status
        self.subject = subject

    @property
    def fields(self) -> list[str]:
        """The fields the details name (dotted paths such as `filters.colour`)."""
        return [d.field for d in self.details if d.field is not None]

    def __str__(self) -> str:
        where = f"{self.subject}: " if self.subject else ""
        return f"{where}{self.status or ''} {self.code}: {self.message}".replace("  ", " ")


class InvalidRequest(EkkoError):
    """400 validation_error: bad JSON, wrong type or format, unknown field, bad filter."""

    status = 400


class Unauthorized(EkkoError):
    """401: wrong email or password on users.authenticate."""

    status = 401


class Forbidden(EkkoError):
    """403: a privileged field sent to a subject that may not set it."""

    status = 403


class NotFound(EkkoError):
    """404: no record with that id, or a foreign key to a missing record."""

    status = 404


class Conflict(EkkoError):
    """409: duplicate id or unique key, stale expected_version, delete with children."""

    status = 409


class PayloadTooLarge(EkkoError):
    """413: the record (or reply) would not fit in the server's max_payload."""

    status = 413


class TooManyAttempts(EkkoError):
    """429: too many failed logins for the email; refused for a while."""

    status = 429


class InternalError(EkkoError):
    """500: a bug in the service; the message holds the request id of the logged traceback."""

    status = 500


class Unavailable(EkkoError):
    """503: JetStream or the database is not available right now (nothing was written)."""

    status = 503


class InsufficientStorage(EkkoError):
    """507: not enough free disk for a backup."""

    status = 507


class RequestTimeout(EkkoError):
    """No reply within the timeout, after the retries this request allows. A write may have
    been applied: read it back (or create with your own id, which the client retries safely)."""

    code = "timeout"


class NoResponders(EkkoError):
    """No ekko instance listens on the subject (the service is down or still starting).
    The request reached nobody, so nothing was applied."""

    code = "no_responders"


_BY_STATUS: dict[int, type[EkkoError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        TooManyAttempts,
        InternalError,
        Unavailable,
        InsufficientStorage,
    )
    if cls.status is not None
}
_ERROR_DECODER = msgspec.json.Decoder(ErrorReply)


def error_from_reply(subject: str, headers: Mapping[str, str], body: bytes) -> EkkoError | None:
    """The exception an error reply stands for; None for a successful reply."""
    raw_status = headers.get(ERROR_CODE_HEADER)
    if raw_status is None:
        return None
    try:
        status = int(raw_status)
    except ValueError:
        status = 0
    cls = _BY_STATUS.get(status, EkkoError)
    try:
        error = _ERROR_DECODER.decode(body).error
    except msgspec.DecodeError:  # not ekko's body (another NATS service?): the headers still say what failed
        return cls(headers.get(ERROR_HEADER, raw_status), status=status, subject=subject)
    return cls(error.message, code=error.code, details=list(error.details), status=status, subject=subject)
