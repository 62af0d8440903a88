"""Replies of the NATS services protocol (ADR-32): `$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`.

Field names and `type` values are the protocol's (JSON schemas `io.nats.micro.v1.*`), so
`nats micro ls|info|stats` and every NATS services client read them.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

__all__ = ["EndpointInfo", "EndpointStats", "InfoResponse", "PingResponse", "StatsResponse"]


class PingResponse(Struct):
    name: str
    id: str
    version: str
    metadata: dict[str, str]
    type: Literal["io.nats.micro.v1.ping_response"] = "io.nats.micro.v1.ping_response"


class EndpointInfo(Struct):
    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str]


class InfoResponse(Struct):
    name: str
    id: str
    version: str
    metadata: dict[str, str]
    description: str
    endpoints: list[EndpointInfo]
    type: Literal["io.nats.micro.v1.info_response"] = "io.nats.micro.v1.info_response"


class EndpointStats(Struct):
    name: str
    subject: str
    queue_group: str
    num_requests: int
    num_errors: int
    last_error: str
    processing_time: int
    """nanoseconds, summed over every request"""
    average_processing_time: int
    """nanoseconds"""


class StatsResponse(Struct):
    name: str
    id: str
    version: str
    metadata: dict[str, str]
    started: str
    """RFC 3339, UTC"""
    endpoints: list[EndpointStats]
    type: Literal["io.nats.micro.v1.stats_response"] = "io.nats.micro.v1.stats_response"
