"""Requests over one NATS connection: encode, send, turn error replies into exceptions, retry
what is safe to retry.

What is retried (decision "client retries" in the repository's docs/decisions.md):
- no responders, and 503 `unavailable`: the request reached no instance, or was refused
  before anything was written, so any request is retried;
- a timeout (no reply): only requests marked idempotent (reads, and a create that carries
  the caller's own id). A write that timed out may have been applied; sending it again could
  apply it twice, so it raises `RequestTimeout` at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from .errors import EkkoError, NoResponders, RequestTimeout, Unavailable, error_from_reply
from .schema.common import encode


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a request that may be retried is sent again."""

    retries: int = 2
    """Extra attempts after the first (0 = never retry)."""
    backoff: float = 0.1
    """Seconds before the first retry; doubles for each next one."""
    max_backoff: float = 2.0
    """Upper bound of one wait."""

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"retries and backoffs must not be negative: {self}")

    def delay(self, retry: int) -> float:
        return min(self.backoff * 2**retry, self.max_backoff)


@dataclass(frozen=True)
class Transport:
    """A NATS connection with the subject prefix, timeout, retry policy and headers every
    request of one client shares. Immutable: `with_headers` makes a sibling."""

    nc: Client
    prefix: str = "ekko"
    timeout: float = 5.0
    """Seconds one attempt waits for its reply."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: dict[str, str] = field(default_factory=dict)

    def subject(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def with_headers(self, headers: dict[str, str]) -> Transport:
        return replace(self, headers={**self.headers, **headers})

    async def request(self, name: str, body: Any = None, *, idempotent: bool) -> bytes:
        """The reply body of `<prefix>.<name>`; raises the EkkoError subclass of an error reply.

        `body` is a Struct, a dict or None (no body); `idempotent` allows retries after a timeout."""
        subject = self.subject(name)
        payload = b"" if body is None else encode(body)
        timeouts = 0
        for attempt in range(self.retry.retries + 1):
            last = attempt == self.retry.retries
            try:
                msg = await self.nc.request(subject, payload, timeout=self.timeout, headers=self.headers or None)
            except NoRespondersError as exc:
                if last:
                    nobody = NoResponders("no ekko instance answers", subject=subject)
                    raise _counted(nobody, attempt, timeouts) from exc
            except NatsTimeoutError as exc:
                timeouts += 1
                if last or not idempotent:
                    silence = RequestTimeout(f"no reply within {self.timeout} s", subject=subject)
                    raise _counted(silence, attempt, timeouts) from exc
            else:
                error = error_from_reply(subject, msg.headers or {}, msg.data)
                if error is None:
                    return msg.data
                if last or not isinstance(error, Unavailable):
                    raise _counted(error, attempt, timeouts)
            await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")


def _counted(error: EkkoError, attempt: int, timeouts: int) -> EkkoError:
    error.attempts = attempt + 1
    error.timeouts = timeouts
    return error
