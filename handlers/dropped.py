"""Requests the NATS client dropped before ekko saw them still get a reply.

nats-py holds each subscription's messages in a bounded buffer while its handlers are busy
(FastStream hands a message over only when a worker slot is free). Past the buffer's limit
(pending messages or bytes) nats-py throws the message away and calls the connection's
error callback with a `SlowConsumerError` that carries the message's subject and reply
subject. Unanswered, the caller would wait out its timeout; `DroppedRequests.answer` replies
503 `overloaded` at once, counts it on the subject like any error reply, and logs a summary
at most every `LOG_EVERY` seconds (a flood must not become a flood of log lines).

The callback runs inside nats-py's read loop, which an exception would end for good: the
caller (service.app) keeps every exception in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nats.errors import SlowConsumerError

from handlers.errors import error_reply, fitted_error
from service.model.errors import Overloaded
from service.model.limits import DEFAULT_MAX_PAYLOAD
from service.usecases.metrics import RequestMetrics

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between two summaries of dropped requests
_REASON = "ekko is receiving requests faster than it can take them: retry shortly"


def is_request(exc: SlowConsumerError) -> bool:
    """A dropped message a caller waits on: it has a reply subject, and it is not one of
    JetStream's own (an ack, a flow control or a delivery to a consumer of ours: answering
    those would ack or confuse them)."""
    subject = getattr(exc.sub, "subject", exc.subject) or ""
    return bool(exc.reply) and not exc.reply.startswith("$JS.") and not subject.startswith(("_INBOX.", "$JS."))


class DroppedRequests:
    """Answers and counts the requests nats-py dropped (see the module's docstring)."""

    def __init__(self, metrics: RequestMetrics | None, *, log_every: float = LOG_EVERY) -> None:
        self.metrics = metrics
        self.log_every = log_every
        self.answered = 0  # since start
        self._unlogged = 0
        self._logged_at = float("-inf")

    async def answer(self, nc: Any, exc: SlowConsumerError) -> bool:
        """Reply 503 to the dropped request on `nc` (the connection that dropped it).
        False for a dropped message that is not a request (nothing to answer)."""
        if not is_request(exc):
            return False
        status, reply = error_reply(Overloaded(_REASON))
        body, headers = fitted_error(status, reply, getattr(nc, "max_payload", 0) or DEFAULT_MAX_PAYLOAD)
        try:
            await nc.publish(exc.reply, body, headers=headers)
        except Exception as error:  # noqa: BLE001 - a closing connection: nothing to answer on
            log.debug("could not answer a dropped request on %s: %r", exc.subject, error)
            return False
        self.answered += 1
        self._unlogged += 1
        if self.metrics is not None:
            self.metrics.refused(exc.subject, f"{status} {reply.error.message}")
        now = time.monotonic()
        if now - self._logged_at >= self.log_every:
            log.warning(
                "the NATS client dropped %d request(s) (its buffer for %s was full); answered 503 overloaded",
                self._unlogged,
                exc.subject,
                extra={"dropped": self._unlogged, "subject": exc.subject},
            )
            self._logged_at, self._unlogged = now, 0
        return True
