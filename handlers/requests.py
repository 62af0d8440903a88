"""The middleware every request passes: error replies and the in-flight budget of large bodies
(ErrorReplyMiddleware), the caller's correlation id (header Ekko-Correlation-Id, copied onto the
events its write makes), then one count per request in RequestMetrics (subject, duration,
error) and one DEBUG log line.

The duration runs from FastStream handing over the message to the reply being published,
decoding included: what a caller waits for, less the network."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from handlers.errors import ErrorReplyMiddleware
from schema.events import CORRELATION_HEADER
from service.model.correlation import CORRELATION_ID, checked_correlation_id
from service.model.ids import new_id
from service.model.limits import BodyBudget
from service.usecases.metrics import RequestMetrics

log = logging.getLogger("ekko.requests")


class RequestMiddleware(ErrorReplyMiddleware):
    metrics: RequestMetrics  # set on the class request_middleware makes

    def __init__(self, msg: Any, /, *, context: Any) -> None:
        super().__init__(msg, context=context)
        self.started = time.perf_counter()

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        """Run the handler with the request's correlation id set (a bad one is a 400, raised here
        inside the handler's scope so after_processed answers it) and a large request counted
        against the in-flight budget (ErrorReplyMiddleware.take_budget)."""
        headers = getattr(self.msg, "headers", None)
        correlation_id = checked_correlation_id(headers.get(CORRELATION_HEADER) if headers else None)
        taken = self.take_budget()  # inline rather than through super(): one coroutine less per request
        if correlation_id is None and not taken:
            return await call_next(msg)
        token = None if correlation_id is None else CORRELATION_ID.set(correlation_id)
        try:
            return await call_next(msg)
        finally:
            if token is not None:
                CORRELATION_ID.reset(token)
            if taken:
                self.give_back_budget(taken)

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if exc_val is not None and not isinstance(exc_val, Exception):
            return False  # cancelled or exiting: no reply, nothing to count
        status, error = 200, None
        if exc_val is not None:
            status, reply = await self.reply_error(exc_val)
            error = f"{status} {reply.error.message}"
        seconds = time.perf_counter() - self.started
        subject: str = getattr(self.msg, "subject", "")
        self.metrics.record(subject, seconds, error)
        if log.isEnabledFor(logging.DEBUG):  # the line costs more than a cached get: build it only when wanted
            ms = round(seconds * 1000, 3)
            log.debug(
                "%s %d in %.3f ms", subject, status, ms, extra={"subject": subject, "status": status, "duration_ms": ms}
            )
        return exc_val is not None  # handled: FastStream must not log it again or swallow it silently


def request_middleware(metrics: RequestMetrics | None, budget: BodyBudget) -> type[ErrorReplyMiddleware]:
    """The middleware class FastStream builds per message (passing the message and context),
    bound to this service's metrics and budget as class attributes: a functools.partial with
    keywords cost ~1% of a cached get. Without metrics (EKKO_ENDPOINT_STATS=false, benchmarks
    only) errors are replied, not counted."""
    if metrics is None:
        return type("BoundErrorReplyMiddleware", (ErrorReplyMiddleware,), {"budget": budget})
    return type("BoundRequestMiddleware", (RequestMiddleware,), {"budget": budget, "metrics": metrics})


async def parse_request(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parser, with the FastStream correlation id (echoed in the reply's
    `correlation_id` header) drawn from service.model.ids when the request carries none.
    FastStream would call uuid4(), whose os.urandom read lets go of the GIL: 9% of the event
    loop's samples under cached gets at 64 in flight (py-spy), where a pooled id costs ~1 µs."""
    headers = msg.headers
    if headers is None:
        msg.headers = {"correlation_id": new_id()}
    elif "correlation_id" not in headers:
        headers["correlation_id"] = new_id()
    return await original(msg)
