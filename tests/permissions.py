"""Connections that report what nats-server refused them: a denied publish or subscribe is
not an exception in nats-py but an asynchronous `-ERR 'Permissions Violation ...'`, handed
to error_cb. `Probe` collects those, so a test can say "this was denied" and mean it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS

DENIAL_WAIT = 3.0  # seconds to wait for the server's -ERR (it comes back after one round trip)


@dataclass
class Probe:
    nc: NATS
    errors: list[str] = field(default_factory=list)

    @classmethod
    async def connect(cls, url: str, **options: Any) -> Probe:
        probe = cls(None)  # type: ignore[arg-type]

        async def collect(exc: Exception) -> None:
            probe.errors.append(str(exc))

        probe.nc = await nats.connect(url, error_cb=collect, allow_reconnect=False, **options)
        return probe

    def _violation(self, kind: str, subject: str) -> bool:
        wanted = f'permissions violation for {kind} to "{subject}"'.lower()
        return any(wanted in error.lower() for error in self.errors)

    async def _wait_for(self, kind: str, subject: str, wait: float) -> bool:
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            if self._violation(kind, subject):
                return True
            await asyncio.sleep(0.02)
        return self._violation(kind, subject)

    async def publish_denied(self, subject: str, payload: bytes = b"{}", wait: float = DENIAL_WAIT) -> bool:
        await self.nc.publish(subject, payload)
        await self.nc.flush()
        return await self._wait_for("publish", subject, wait)

    async def subscribe_denied(self, subject: str, queue: str = "", wait: float = DENIAL_WAIT) -> bool:
        sub = await self.nc.subscribe(subject, queue=queue)
        await self.nc.flush()
        denied = await self._wait_for("subscription", subject, wait)
        await sub.unsubscribe()
        return denied

    async def close(self) -> None:
        await self.nc.close()
