"""The correlation id of the request being served, for the events its write makes.

A caller may send `Ekko-Correlation-Id` on any request. The request middleware checks it
and sets CORRELATION_ID for the handler's task; `Database.write` reads it there, on the
event loop, and hands it to the unit of work on the writer thread (a context variable does
not follow work into another thread by itself)."""

from __future__ import annotations

import re
from contextvars import ContextVar

from schema.events import CORRELATION_HEADER
from service.model.errors import Detail, ValidationFailed

MAX_CORRELATION_ID = 128
# Visible ASCII, no space: a NATS header value is one line, and readers trim spaces at its ends.
_VALID = re.compile(rf"[\x21-\x7e]{{1,{MAX_CORRELATION_ID}}}")

CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def checked_correlation_id(value: str | None) -> str | None:
    """The header's value when it is a usable correlation id, None when absent; 400 otherwise
    (the caller asked for its events to be linked: silently dropping the id would hide that)."""
    if value is None:
        return None
    if _VALID.fullmatch(value):  # fullmatch: `$` would let a trailing newline through
        return value
    message = f"{CORRELATION_HEADER} must be 1-{MAX_CORRELATION_ID} visible ASCII characters without spaces"
    raise ValidationFailed(message, [Detail(CORRELATION_HEADER, message)])
