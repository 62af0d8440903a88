"""Every endpoint the service answers, for `$SRV.INFO` / `$SRV.STATS`.

`subject()`/`subscribe()` (handlers/crud.py) register each subject once, with its queue group
and its request and reply types: `$SRV.INFO` names them (the schemas of docs/schemas.json), and
scripts/gen_schemas.py and scripts/gen_asyncapi.py build the published contract from them. The counts come from the
one request middleware (handlers/requests.py), which records every request, error replies
included, in `RequestMetrics`: `ekko.metrics`, Prometheus and `$SRV.STATS` read the same count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from service.usecases.metrics import RequestMetrics


def schema_name(shape: Any) -> str | None:
    """The name `$SRV.INFO` gives a request or reply shape: a Struct's name (or a name given as
    text); None for no body or a plain object such as `dict[str, int]`."""
    if isinstance(shape, str):
        return shape
    return shape.__name__ if isinstance(shape, type) else None


class Endpoint:
    """One served subject: what `$SRV.INFO` says of it, and the request and reply shapes
    (a Struct, a type such as `dict[str, int]`, a Struct's name, or None: no body / free-form)."""

    __slots__ = ("metadata", "name", "queue_group", "reply", "request", "subject")

    def __init__(self, name: str, subject: str, queue_group: str, request: Any, reply: Any) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.request = request
        self.reply = reply
        names = {"request_schema": schema_name(request), "reply_schema": schema_name(reply)}
        self.metadata = {key: value for key, value in names.items() if value is not None}


class Endpoints:
    """The catalogue, by subject, in the order the routers registered them."""

    def __init__(self, requests: RequestMetrics) -> None:
        self.requests = requests  # the counts `$SRV.STATS` reports for the listed subjects
        self.by_subject: dict[str, Endpoint] = {}

    def add(self, subject: str, *, queue_group: str, request: Any, reply: Any) -> None:
        """Register a subject (again for each of its subscribers: the first registration counts).
        `request`/`reply`: the Struct (or type) of the body; None: the body is ignored / free-form."""
        if subject in self.by_subject:
            return
        # ADR-32 endpoint names are [A-Za-z0-9_-]+: the subject after its prefix, dots as dashes.
        name = "-".join(subject.split(".")[1:]) or subject
        self.by_subject[subject] = Endpoint(name, subject, queue_group, request, reply)

    def prefixed(self, prefix: str) -> PrefixedEndpoints:
        return PrefixedEndpoints(self, prefix)

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.by_subject.values())


class PrefixedEndpoints:
    """The catalogue as a router sees it: subjects relative to the router's prefix."""

    def __init__(self, endpoints: Endpoints, prefix: str) -> None:
        self.endpoints = endpoints
        self.prefix = prefix

    def add(self, subject: str, *, queue_group: str, request: Any, reply: Any) -> None:
        self.endpoints.add(self.prefix + subject, queue_group=queue_group, request=request, reply=reply)
