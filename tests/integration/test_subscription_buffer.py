"""EKKO_SUBSCRIPTION_BUFFER_BYTES bounds what nats-py holds per subscription while its workers
are busy (decision 57); the requests past it are answered 503 `overloaded` at once
(handlers.dropped), the ones it held are served once a worker is free."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from service.config import Settings
from tests.client import Client
from tests.factories import PASSWORD, Factory


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # One worker for the login subject, busy ~0.5 s in bcrypt at cost 13; a 4 KiB buffer.
    return dataclasses.replace(settings, bcrypt_rounds=13, workers_per_subject=1, subscription_buffer_bytes=4096)


async def test_requests_past_the_buffer_are_refused_at_once_and_the_held_ones_served(
    client: Client, make: Factory
) -> None:
    user = await make.create("users")
    login = "ekko.users.authenticate"
    slow = asyncio.create_task(client.request(login, {"email": user["email"], "password": PASSWORD}, timeout=60))
    await asyncio.sleep(0.05)  # the login holds the subject's one worker
    bodies = [{"email": user["email"], "password": "x" * 2000} for _ in range(10)]  # ~2 KiB each
    asks = [asyncio.create_task(client.request(login, body, timeout=60)) for body in bodies]
    done, _ = await asyncio.wait(asks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert done and not slow.done(), "a refusal waited for the busy worker"
    replies = await asyncio.gather(*asks)
    refused = [r for r in replies if r.status == 503]
    assert all(r.error["code"] == "overloaded" for r in refused)
    # A few held in the 4 KiB buffer (how many depends on where the worker was when they came),
    # every other one refused; none waited for the worker.
    assert 5 <= len(refused) <= 9
    assert all(400 <= r.status < 500 for r in replies if r.status != 503)  # the held ones: refused logins
    assert (await slow).ok
