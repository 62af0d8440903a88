"""Every endpoint the service answers, for `$SRV.INFO` / `$SRV.STATS`.

`subject()`/`subscribe()` (handlers/crud.py) register each subject once, with its queue group
and the names of its request and reply schemas (docs/schemas.json). The counts come from the
one request middleware (handlers/requests.py), which records every request, error replies
included, in `RequestMetrics`: `ekko.metrics`, Prometheus and `$SRV.STATS` read the same count.
"""

from __future__ import annotations

from collections.abc import Iterator

from service.usecases.metrics import RequestMetrics


class Endpoint:
    """One served subject: what `$SRV.INFO` says of it."""

    __slots__ = ("metadata", "name", "queue_group", "subject")

    def __init__(self, name: str, subject: str, queue_group: str, metadata: dict[str, str]) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.metadata = metadata


class Endpoints:
    """The catalogue, by subject, in the order the routers registered them."""

    def __init__(self, requests: RequestMetrics) -> None:
        self.requests = requests  # the counts `$SRV.STATS` reports for the listed subjects
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
