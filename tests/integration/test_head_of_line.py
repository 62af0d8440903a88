"""A request never waits behind a longer one of the same subject while the subject has a free
worker (decision 48): with one plain subscriber per worker NATS could hand it to the busy
one, and FastStream runs one subscriber's requests one after another."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from service.config import Settings
from tests.client import Client
from tests.factories import PASSWORD, Factory


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Hashes at cost 13: the login below spends ~0.5 s or more in bcrypt. Two workers: with
    # plain subscribers each short request would have even odds of landing on the busy one.
    return dataclasses.replace(settings, bcrypt_rounds=13, workers_per_subject=2)


async def test_short_requests_are_answered_while_a_long_one_of_the_subject_runs(client: Client, make: Factory) -> None:
    user = await make.create("users")
    login = "ekko.users.authenticate"
    slow = asyncio.create_task(client.request(login, {"email": user["email"], "password": PASSWORD}, timeout=60))
    await asyncio.sleep(0.05)  # the login is being checked
    for _ in range(10):
        refused = await client.request(login, {"email": user["email"]}, timeout=60)  # no password: a 400 at decode
        assert refused.status == 400
        assert not slow.done(), "a short request waited for the long one"
    assert (await slow).ok
