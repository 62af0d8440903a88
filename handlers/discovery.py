"""The NATS services protocol (ADR-32): `$SRV.PING|INFO|STATS`, `.ekko`, `.ekko.<id>`.

FastStream does not speak it, and nats-py's `nats.micro` would subscribe every endpoint a
second time (a request would then be delivered to both). So ekko answers the discovery
subjects from its own subscribers and reports the counts the request middleware keeps for
the subjects it already serves (decision 15). The discovery subscribers are in no queue group:
every instance answers, as the protocol requires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from faststream.nats import NatsRouter

from handlers.stats import Endpoints
from schema.common import encode
from schema.discovery import EndpointInfo, EndpointStats, InfoResponse, PingResponse, StatsResponse

SERVICE_NAME = "ekko"
DESCRIPTION = (
    "ekko data service: users, wallets, alerts, balances, rules, workflows and agents stored in DuckDB,"
    " served by NATS request-reply (ekko.<entity>.create|get|update|delete|list), every change relayed"
    " to JetStream KV buckets and the EKKO_EVENTS stream"
)
VERBS = ("PING", "INFO", "STATS")
REPLIES = {"PING": PingResponse, "INFO": InfoResponse, "STATS": StatsResponse}  # what each verb answers


class Identity:
    """Who answers: the same name, id, version and metadata in every discovery reply."""

    def __init__(self, instance_id: str, version: str, started: datetime, metadata: dict[str, str]) -> None:
        self.id = instance_id
        self.version = version
        self.started = started
        self.metadata = metadata


def discovery_subjects(instance_id: str) -> list[str]:
    return [
        subject
        for verb in VERBS
        for subject in (f"$SRV.{verb}", f"$SRV.{verb}.{SERVICE_NAME}", f"$SRV.{verb}.{SERVICE_NAME}.{instance_id}")
    ]


async def _unread(_msg: Any) -> None:
    """The decoder of the discovery subjects: their requests' bodies mean nothing."""


def discovery_router(identity: Identity, endpoints: Endpoints) -> NatsRouter:
    router = NatsRouter()
    ping_reply = encode(PingResponse(SERVICE_NAME, identity.id, identity.version, identity.metadata))
    started = identity.started.isoformat().replace("+00:00", "Z")
    info_reply: list[bytes] = []  # built on the first request, once every router has registered

    async def ping(_request: Any) -> bytes:  # the body, if any, is not read
        return ping_reply

    async def info(_request: Any) -> bytes:  # the body, if any, is not read
        if not info_reply:
            listed = [EndpointInfo(e.name, e.subject, e.queue_group, e.metadata) for e in endpoints]
            info_reply.append(
                encode(
                    InfoResponse(SERVICE_NAME, identity.id, identity.version, identity.metadata, DESCRIPTION, listed)
                )
            )
        return info_reply[0]

    async def stats(_request: Any) -> bytes:  # the body, if any, is not read
        counted = []
        for e in endpoints:
            s = endpoints.requests.subjects.get(e.subject)
            n, errors, last = (s.num_requests, s.num_errors, s.last_error or "") if s is not None else (0, 0, "")
            total_ns = round(s.processing_time * 1e9) if s is not None else 0  # ADR-32 counts nanoseconds
            counted.append(
                EndpointStats(e.name, e.subject, e.queue_group, n, errors, last, total_ns, total_ns // n if n else 0)
            )
        return encode(StatsResponse(SERVICE_NAME, identity.id, identity.version, identity.metadata, started, counted))

    handlers = {"PING": ping, "INFO": info, "STATS": stats}
    for subject in discovery_subjects(identity.id):
        # No queue group: every instance answers. The body is not read, so not decoded either:
        # FastStream's default decoder would turn a non-JSON body sent as JSON into a 500.
        router.subscriber(subject, decoder=_unread)(handlers[subject.split(".")[1]])
    return router
