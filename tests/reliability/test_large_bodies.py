"""Large request bodies in flight are bounded (EKKO_INFLIGHT_BODY_BYTES): past the budget a
large request gets a 503 at once and changes nothing; small requests never wait on it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from service.app import Ekko
from service.config import Settings
from service.model.limits import LARGE_BODY
from tests.client import Client, Reply
from tests.factories import Factory

BLOB = 300_000  # characters in each alert's job_spec: ~300 KB bodies, 2 within the budget
BUDGET = 700_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, inflight_body_bytes=BUDGET, write_workers_per_subject=16)


@pytest.mark.parametrize("padding", ["body", "header"])
async def test_large_writes_past_the_budget_get_503_at_once_and_change_nothing(
    ekko: Ekko, client: Client, make: Factory, padding: str
) -> None:
    """max_payload bounds body and headers together: a huge header counts like a huge body."""
    wallet = await make.parent("wallets")
    blob = "x" * BLOB
    bodies = [
        await make.payload(
            "alerts", related_wallet_id=wallet, job_spec={"n": n, "blob": blob} if padding == "body" else {"n": n}
        )
        for n in range(6)
    ]
    headers = {"X-Padding": blob} if padding == "header" else None
    assert all(len(json.dumps(b)) + len(json.dumps(headers)) >= LARGE_BODY for b in bodies)
    busy = asyncio.create_task(ekko.db.write(lambda uow: time.sleep(3)))  # the writer, taken for 3 s
    await asyncio.sleep(0.1)
    sent = [asyncio.create_task(client.request("ekko.alerts.create", b, timeout=10, headers=headers)) for b in bodies]
    # A small write is not counted: it waits for the writer like any write, and is taken.
    small = asyncio.create_task(client.request("ekko.wallets.create", await make.payload("wallets"), timeout=10))
    # Two bodies fit in the budget and wait for the writer; the other four are answered first.
    first: list[Reply] = []
    for reply in asyncio.as_completed(sent):
        first.append(await reply)
        if len(first) == len(bodies) - 2:
            break
    assert not busy.done()  # answered while the writer was still held: at once, not after it
    assert all(r.status == 503 and r.error["code"] == "overloaded" for r in first), first
    assert all("retry" in r.headers["Nats-Service-Error"] for r in first)
    await busy
    replies = [await t for t in sent]
    taken = [r for r in replies if r.ok]
    assert len(taken) == 2, [r.status for r in replies]  # the two that fit, written once the writer was free
    assert (await small).ok
    stored = await client.ok("ekko.alerts.list", {"filters": {"related_wallet_id": wallet}, "limit": 100})
    # Exactly the taken ones were written: the refused bodies changed nothing.
    assert sorted(a["id"] for a in stored["items"]) == sorted(r.body["id"] for r in taken)
    assert ekko.body_budget.in_use == 0 and ekko.body_budget.refused == len(bodies) - 2
