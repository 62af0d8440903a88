"""Every endpoint the service answers, and its request counts for `$SRV.INFO` / `$SRV.STATS`.

`subscribe()` (handlers/crud.py) registers each subject once, with its queue group and the
names of its request and reply schemas (docs/schemas.json). `CountingMiddleware` is the one
place that counts: it is the error-reply middleware plus a clock, so error replies are counted
with the status and message they carried, and the time includes publishing the reply.
Counting is two clock reads, a dict lookup and three additions per request, on the event loop
(no lock).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import ClassVar

from handlers.errors import ErrorReplyMiddleware


class Endpoint:
    """One served subject and what it has done since the service started."""

    __slots__ = (
        "last_error",
        "metadata",
        "name",
        "num_errors",
        "num_requests",
        "processing_time",
        "queue_group",
        "subject",
    )

    def __init__(self, name: str, subject: str, queue_group: str, metadata: dict[str, str]) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.metadata = metadata
        self.num_requests = 0
        self.num_errors = 0
        self.last_error = ""  # "<status> <message>" of the latest error reply
        self.processing_time = 0  # nanoseconds, summed

    def record(self, nanoseconds: int, error: str | None) -> None:
        self.num_requests += 1
        self.processing_time += nanoseconds
        if error is not None:
            self.num_errors += 1
            self.last_error = error

    @property
    def average_processing_time(self) -> int:
        return self.processing_time // self.num_requests if self.num_requests else 0


class Endpoints:
    """The catalogue, by subject, in the order the routers registered them."""

    def __init__(self) -> None:
        self.by_subject: dict[str, Endpoint] = {}

    def add(self, subject: str, *, queue_group: str, request: str | None, reply: str | None) -> None:
        """Register a subject (again for each of its subscribers: the first registration counts).
        `request`/`reply` name a schema in docs/schemas.json; None: the body is ignored / free-form."""
        if subject in self.by_subject:
            return
        metadata = {}
        if request is not None:
            metadata["request_schema"] = request
        if reply is not None:
            metadata["reply_schema"] = reply
        # ADR-32 endpoint names are [A-Za-z0-9_-]+: the subject after its prefix, dots as dashes.
        name = "-".join(subject.split(".")[1:]) or subject
        self.by_subject[subject] = Endpoint(name, subject, queue_group, metadata)

    def prefixed(self, prefix: str) -> PrefixedEndpoints:
        return PrefixedEndpoints(self, prefix)

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.by_subject.values())


class PrefixedEndpoints:
    """The catalogue as a router sees it: subjects relative to the router's prefix."""

    def __init__(self, endpoints: Endpoints, prefix: str) -> None:
        self.endpoints = endpoints
        self.prefix = prefix

    def add(self, subject: str, *, queue_group: str, request: str | None, reply: str | None) -> None:
        self.endpoints.add(self.prefix + subject, queue_group=queue_group, request=request, reply=reply)


class CountingMiddleware(ErrorReplyMiddleware):
    """Error replies (the base class) plus one count per request of a catalogued subject.
    Bound to a catalogue by `counting_middleware` (a subclass with `endpoints` set): FastStream
    builds one middleware per message, so nothing here may cost more than a few attribute reads."""

    __slots__ = ("endpoint", "started")  # no per-message __dict__
    endpoints: ClassVar[Endpoints]

    async def on_receive(self) -> None:
        self.endpoint = self.endpoints.by_subject.get(getattr(self.msg, "subject", ""))
        self.started = time.perf_counter_ns()

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        endpoint = self.endpoint
        if exc_val is None:  # the hot path: a reply was published
            if endpoint is not None:
                endpoint.num_requests += 1
                endpoint.processing_time += time.perf_counter_ns() - self.started
            return False
        if not isinstance(exc_val, Exception):
            return False  # cancelled or exiting: no reply, nothing to count
        status, reply = await self.reply_error(exc_val)
        if endpoint is not None:
            endpoint.record(time.perf_counter_ns() - self.started, f"{status} {reply.error.message}")
        return True  # handled: FastStream must not log it again or swallow it silently


def counting_middleware(endpoints: Endpoints) -> type[CountingMiddleware]:
    """The middleware class FastStream instantiates per message, counting into `endpoints`."""
    return type("BoundCountingMiddleware", (CountingMiddleware,), {"endpoints": endpoints, "__slots__": ()})
