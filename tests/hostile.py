"""Hostile requests (tests/reliability): each one is timed, counted, and must be answered (never a 5xx).

The counts are printed at the end of the run (`hostile requests: sent ..., answered ...,
answered 5xx ...`), the figures issue 9 asks for."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from service.app import Ekko
from service.model.registry import ENTITY_ORDER
from tests.client import Client, Reply

DEADLINE = 1.0  # seconds a hostile request may take to be answered (issue 9, "within 1 s")


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    server_errors: int = 0


TALLY = Tally()


@dataclass
class Hostile:
    """Sends a hostile request; fails the test unless a 4xx comes back within DEADLINE."""

    client: Client

    async def send(self, subject: str, payload: bytes, status: int) -> Reply:
        TALLY.sent += 1
        start = time.monotonic()
        reply = await self.client.raw(subject, payload, timeout=5.0)
        took = time.monotonic() - start
        TALLY.answered += 1
        if reply.status >= 500:
            TALLY.server_errors += 1
        assert reply.status == status, (reply.status, str(reply.body)[:500])
        assert took < DEADLINE, f"{subject} answered after {took:.2f}s"
        return reply


async def snapshot(ekko: Ekko) -> dict[str, Any]:
    """Row counts of every table and the outbox's last seq: what a refused request must not change."""

    def read(cur: Any) -> dict[str, Any]:
        counts = {t: cur.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in ENTITY_ORDER}
        counts["outbox"] = cur.execute("SELECT count(*), coalesce(max(seq), 0) FROM outbox").fetchone()
        counts["versions"] = cur.execute("SELECT coalesce(sum(version), 0) FROM workflows").fetchone()[0]
        return counts

    return await ekko.db.read(read)
