#!/usr/bin/env python3
"""Container health probe: ask `<prefix>.health` over NATS, exit 0 when ekko answers
healthy or degraded, 1 otherwise (unhealthy, an error reply, no responder, no server).

    NATS_URL=nats://nats:4222 python scripts/healthcheck.py

Degraded still counts as alive: it means a backlog or a slow pool, and restarting
the container would not help. The whole probe gives up after TIMEOUT seconds so a
hung server cannot hang Docker's HEALTHCHECK.
"""

from __future__ import annotations

import asyncio
import json
import sys

import nats

from service.config import ConfigError, Settings, redacted

TIMEOUT = 4.0
ALIVE = frozenset({"healthy", "degraded"})
DEFAULT_URL = "nats://127.0.0.1:4222"


def verdict(data: bytes, headers: dict[str, str] | None) -> tuple[int, str]:
    """(exit code, one-line reason) for a reply of `ekko.health`."""
    if headers and "Nats-Service-Error-Code" in headers:
        return 1, f"error reply {headers['Nats-Service-Error-Code']}: {headers.get('Nats-Service-Error', '')}"
    try:
        status = json.loads(data).get("status")
    except (ValueError, AttributeError):
        return 1, "reply is not a JSON object"
    return (0 if status in ALIVE else 1), f"status {status!r}"


async def _ignore(_exc: Exception) -> None:
    """nats-py logs connection errors by default; the exit code and one line say enough."""


async def probe(url: str, subject: str, options: dict[str, object] | None = None) -> tuple[int, str]:
    # max_reconnect_attempts=0 would retry the first connect forever in nats-py 2.16
    # (its server pool only drops a server when the limit is > 0): 1 means two quick tries.
    nc = await nats.connect(
        url,
        connect_timeout=TIMEOUT / 4,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=_ignore,
        **(options or {}),  # NATS_USER/NATS_PASSWORD, NATS_CREDS, NATS_NKEY_SEED, TLS: as the service connects
    )
    try:
        reply = await nc.request(subject, b"", timeout=TIMEOUT / 2)
    finally:
        await nc.close()
    return verdict(reply.data, reply.headers)


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    url = settings.nats_url or DEFAULT_URL
    subject = f"{settings.subject_prefix}.health"
    try:
        code, reason = asyncio.run(asyncio.wait_for(probe(url, subject, settings.nats_options()), TIMEOUT))
    except TimeoutError:
        code, reason = 1, f"no answer within {TIMEOUT:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer means "not healthy"
        code, reason = 1, f"{type(exc).__name__}: {exc}"
    print(f"{subject} via {redacted(url)}: {reason}", file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
