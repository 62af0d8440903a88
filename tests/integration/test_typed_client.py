"""The typed client (ekko_client) against the real service: typed records, one exception
class per error status, pages, retries only where they are safe, and decoded events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from ekko_client import (
    Conflict,
    EkkoClient,
    Forbidden,
    InvalidRequest,
    NoResponders,
    NotFound,
    RequestTimeout,
    RetryPolicy,
    Unauthorized,
)
from ekko_client.schema.users import UserCreate
from ekko_client.schema.wallets import Wallet, WalletCreate
from tests.factories import PASSWORD
from tests.natsd import NatsServer

FAST = RetryPolicy(retries=2, backoff=0.01)


def address(n: int) -> str:
    return f"0x{n:040x}"


async def test_crud_returns_typed_records(typed: EkkoClient) -> None:
    request = WalletCreate(blockchain_symbol="eth", address=address(1), balance=Decimal("2"))
    created = await typed.wallets.create(request)
    assert isinstance(created, Wallet)
    assert (created.blockchain_symbol, created.balance, created.version) == ("ETH", Decimal("2.00000000"), 1)
    assert await typed.wallets.get(created.id) == created

    updated = await typed.wallets.update(created.id, name="cold", expected_version=1)
    assert (updated.name, updated.version) == ("cold", 2)
    deleted = await typed.wallets.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(NotFound) as raised:
        await typed.wallets.get(created.id)
    assert (raised.value.status, raised.value.code, raised.value.subject) == (404, "not_found", "ekko.wallets.get")


async def test_list_pages_and_iter_walks_every_page(typed: EkkoClient) -> None:
    ids = [(await typed.wallets.create(blockchain_symbol="ETH", address=address(n))).id for n in range(1, 6)]
    first = await typed.wallets.list(sort=["address"], limit=2)
    assert [w.id for w in first.items] == ids[:2]
    assert first.next_cursor is not None

    walked = [w.id async for w in typed.wallets.iter(sort=["address"], page_size=2)]
    assert walked == ids
    only = [w.id async for w in typed.wallets.iter(filters={"address": address(3)})]
    assert only == [ids[2]]


async def test_each_error_status_raises_its_class_with_details(typed: EkkoClient) -> None:
    with pytest.raises(InvalidRequest) as bad:
        await typed.wallets.list(filters={"colour": "red"})
    assert bad.value.status == 400 and "filters.colour" in bad.value.fields

    wallet = await typed.wallets.create(blockchain_symbol="ETH", address=address(7))
    with pytest.raises(Conflict) as stale:
        await typed.wallets.update(wallet.id, name="x", expected_version=5)
    assert stale.value.code == "conflict" and "expected_version" in stale.value.fields

    with pytest.raises(Forbidden):
        await typed.users.create(email="eve@example.com", password=PASSWORD, role="admin")
    user = await typed.users.create(UserCreate(email="ada@example.com", password=PASSWORD))
    assert (await typed.users.authenticate("ADA@example.com", PASSWORD)).id == user.id
    with pytest.raises(Unauthorized):
        await typed.users.authenticate("ada@example.com", "wrong password")


async def test_admin_subjects_as_admin(ekko: object, nats_server: NatsServer) -> None:
    async with await EkkoClient.connect(nats_server.url_for("admin")) as admin:
        user = await admin.admin.users.create(email="root@example.com", password=PASSWORD, role="admin")
        assert user.role == "admin"
        assert (await admin.admin.sync_verify())["in_sync"] in (True, False)
        assert (await admin.database_health())["status"] in ("healthy", "degraded")


async def test_no_responders_is_retried_then_raised(nats_server: NatsServer) -> None:
    # As the service user: it may publish to any ekko.> subject, `client` only to the real ones.
    async with EkkoClient(
        await nats.connect(nats_server.url), prefix="ekko.nobody", retry=FAST, owns_connection=True
    ) as nobody:
        with pytest.raises(NoResponders) as raised:
            await nobody.wallets.create(blockchain_symbol="ETH", address=address(1))
    assert raised.value.attempts == 3  # nothing was delivered, so even a create is sent again


async def test_a_timed_out_write_is_not_sent_again_but_a_read_is(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)  # the service user may subscribe to ekko-like subjects
    received: list[Msg] = []

    async def mute(msg: Msg) -> None:  # a real subscriber that never replies
        received.append(msg)

    await nc.subscribe("ekko.mute.>", cb=mute)
    client = EkkoClient(nc, prefix="ekko.mute", timeout=0.2, retry=FAST)
    try:
        with pytest.raises(RequestTimeout) as write:
            await client.wallets.create(blockchain_symbol="ETH", address=address(1))
        assert (write.value.attempts, len(received)) == (1, 1)
        with pytest.raises(RequestTimeout) as read:
            await client.wallets.get(str(uuid.uuid4()))
        assert (read.value.attempts, read.value.timeouts, len(received)) == (3, 3, 4)
        with pytest.raises(RequestTimeout):
            await client.with_headers({"Ekko-Correlation-Id": "c-1"}).request("ping")
        assert received[-1].headers == {"Ekko-Correlation-Id": "c-1"}
    finally:
        await nc.close()


async def forward_dropping_first_reply(nc: NATS, msg: Msg, state: dict[str, int]) -> None:
    """Pass the request on to the real service; lose the first reply (as a network would)."""
    reply = await nc.request(msg.subject.replace("ekko.lossy.", "ekko."), msg.data, timeout=5)
    state["n"] += 1
    if state["n"] > 1:
        await nc.publish(msg.reply, reply.data, headers=reply.headers)


async def test_a_create_with_own_id_survives_a_lost_reply(ekko: object, nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    state = {"n": 0}

    async def proxy(msg: Msg) -> None:
        await forward_dropping_first_reply(nc, msg, state)

    await nc.subscribe("ekko.lossy.>", cb=proxy)
    client = EkkoClient(nc, prefix="ekko.lossy", timeout=1.0, retry=FAST)
    try:
        wallet_id = str(uuid.uuid4())
        wallet = await client.wallets.create(id=wallet_id, blockchain_symbol="ETH", address=address(9))
        # The first attempt was applied; the retry met 409 and read the record back.
        assert (wallet.id, wallet.version) == (wallet_id, 1)
        with pytest.raises(Conflict):  # a real conflict (same address, other id) still raises
            await client.wallets.create(id=str(uuid.uuid4()), blockchain_symbol="ETH", address=address(9))
    finally:
        await nc.close()


async def test_events_decode_into_typed_records(typed: EkkoClient, typed_reader: EkkoClient) -> None:
    stream = await typed_reader.events.subscribe("wallets", "created", start="all")
    async with stream:
        wallet = await typed.wallets.create(blockchain_symbol="ETH", address=address(4))
        event = await asyncio.wait_for(anext(aiter(stream)), timeout=20)
        assert (event.entity, event.action, event.id, event.version) == ("wallets", "created", wallet.id, 1)
        assert typed.wallets.decode(event.data) == wallet

    deleted = await typed_reader.events.subscribe("wallets", "deleted", start="all")
    async with deleted:
        await typed.wallets.delete(wallet.id)
        event = await deleted.next(timeout=20)
        assert (event.action, event.id, typed.wallets.decode(event.data)) == ("deleted", wallet.id, None)


async def test_events_start_from_a_sequence_or_a_time(typed: EkkoClient, typed_reader: EkkoClient) -> None:
    before = datetime.now(UTC)
    first, second = [await typed.wallets.create(blockchain_symbol="ETH", address=address(n)) for n in (5, 6)]
    async with await typed_reader.events.subscribe(start="all") as everything:
        assert [(await everything.next(timeout=20)).id for _ in range(2)] == [first.id, second.id]
    async with await typed_reader.events.subscribe("wallets", sequence=2) as from_second:
        assert (await from_second.next(timeout=20)).id == second.id
    async with await typed_reader.events.subscribe(since=before) as since:
        assert (await since.next(timeout=20)).id == first.id
