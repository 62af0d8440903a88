"""The audit log: one structured line per privileged act, on logger `ekko.audit`.

Each line is a JSON object: `event` (what), `who`, `outcome` (`ok` or the error code) and
a few identifying fields (ids, a role, a backup path), never a password, hash or body.
`who` is "unknown": with one NATS account nats-server tells a responder nothing about the
requester (it adds `Nats-Request-Info` only to requests crossing accounts), and a header
a client sets itself proves nothing. What is known is who *may* send each subject
(nats-server.conf): `ekko.admin.>` only users `admin` and `ekko`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec

from service.model.errors import ServiceError

AUDIT = logging.getLogger("ekko.audit")
UNKNOWN = "unknown"
_ENCODE = msgspec.json.Encoder()


def audit(event: str, outcome: str, *, who: str = UNKNOWN, **fields: object) -> None:
    line = {"event": event, "who": who, "outcome": outcome, **fields}
    AUDIT.info(
        _ENCODE.encode(
            {k: v if isinstance(v, str | int | float | bool | None) else str(v) for k, v in line.items()}
        ).decode()
    )


@contextlib.asynccontextmanager
async def audited(event: str, *, who: str = UNKNOWN, **fields: object) -> AsyncIterator[dict[str, object]]:
    """Log `event` once the block ends: `ok`, or the error code it raised. The block may add
    fields (a backup's path, a user's id) to the yielded dict."""
    extra: dict[str, object] = {}
    try:
        yield extra
    except ServiceError as exc:
        audit(event, exc.code, who=who, **fields, **extra)
        raise
    except Exception as exc:
        audit(event, "error", who=who, error=type(exc).__name__, **fields, **extra)
        raise
    audit(event, "ok", who=who, **fields, **extra)
