"""Errors are values with a code. Only handlers/errors.py turns them into replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detail:
    field: str | None
    message: str


@dataclass
class ServiceError(Exception):
    """An error the caller caused or can act on. `status` is the Nats-Service-Error-Code."""

    message: str
    details: list[Detail] = field(default_factory=list)
    code = "internal"
    status = 500

    def __str__(self) -> str:
        return self.message


class ValidationFailed(ServiceError):
    code = "validation_error"
    status = 400


class Unauthorized(ServiceError):
    code = "unauthorized"
    status = 401


class Forbidden(ServiceError):
    """The caller may not do this on this subject (e.g. set a role outside ekko.admin.users.*)."""

    code = "forbidden"
    status = 403


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class Conflict(ServiceError):
    code = "conflict"
    status = 409


class TooManyAttempts(ServiceError):
    """Too many failed logins for one email: refused for a while without checking the password."""

    code = "too_many_attempts"
    status = 429


class InsufficientStorage(ServiceError):
    """Not enough free disk for a backup (estimated size plus a margin)."""

    code = "insufficient_storage"
    status = 507


class Unavailable(ServiceError):
    code = "unavailable"
    status = 503


class StorageUnavailable(Unavailable):
    """The database file cannot be written or opened (disk full, read-only, no permission).
    Writes answer 503 with the cause; reads go on; writes resume once the cause is gone."""


class DatabaseLocked(Unavailable):
    """Another process holds the DuckDB file (DuckDB allows one writer process per file)."""


class Overloaded(Unavailable):
    """More requests than the service takes at once (large bodies past their budget, or a
    subject's buffer full: handlers.dropped): retry shortly."""

    code = "overloaded"


def invalid(field_name: str | None, message: str) -> ValidationFailed:
    return ValidationFailed(
        message if field_name is None else f"{field_name}: {message}", [Detail(field_name, message)]
    )


class PayloadTooLarge(ServiceError):
    """A record, KV value, event or reply would be larger than NATS's max_payload."""

    code = "payload_too_large"
    status = 413
