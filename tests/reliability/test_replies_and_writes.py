"""Issue 9, size: no reply goes over max_payload, echoed input is cut short, a write that
could not be relayed is refused before it commits, and list pages are cut by size.

Each case runs on a nats-server with the default max_payload (1 MiB), gets a 4xx within
one second, and the service still answers afterwards."""

from __future__ import annotations

import json

import pytest

from service.app import Ekko
from service.model.registry import ENTITY_ORDER
from tests.client import Client
from tests.factories import Factory
from tests.hostile import Hostile, snapshot
from tests.sync_helpers import eventually

MAX_PAYLOAD = 1024 * 1024  # nats-server's default, which the test server keeps


async def still_serving(client: Client, make: Factory) -> None:
    assert (await client.request("ekko.health")).ok
    await make.create("wallets")


def reply_size(body: object, headers: dict[str, str]) -> int:
    return len(json.dumps(body)) + sum(len(k) + len(v) + 4 for k, v in headers.items())


async def test_get_with_an_id_near_max_payload_is_a_short_404(hostile: Hostile, client: Client, make: Factory) -> None:
    payload = json.dumps({"id": "a" * 1_048_500}).encode()
    assert len(payload) < MAX_PAYLOAD
    reply = await hostile.send("ekko.wallets.get", payload, 404)
    assert reply.error["code"] == "not_found"
    assert "more characters cut" in reply.error["message"]
    assert reply_size(reply.body, reply.headers) < 10_000
    await still_serving(client, make)


async def test_unknown_field_names_are_echoed_cut_short(hostile: Hostile, client: Client, make: Factory) -> None:
    for size in (262_000, 300_000):
        body = {"blockchain_symbol": "ETH", "address": "0x" + "1" * 40, "f" * size: 1}
        reply = await hostile.send("ekko.wallets.create", json.dumps(body).encode(), 400)
        assert reply.error["code"] == "validation_error"
        assert reply_size(reply.body, reply.headers) < 20_000
    await still_serving(client, make)


async def test_list_errors_echoing_huge_sort_or_filter_names_are_cut(
    hostile: Hostile, client: Client, make: Factory
) -> None:
    for body in ({"sort": ["a" * 600_000]}, {"filters": {"a" * 600_000: 1}}, {"sort": ["-" + "b" * 600_000]}):
        reply = await hostile.send("ekko.alerts.list", json.dumps(body).encode(), 400)
        assert reply_size(reply.body, reply.headers) < 20_000
    await still_serving(client, make)


async def test_update_and_delete_of_an_unknown_huge_id_are_short_404s(
    hostile: Hostile, client: Client, make: Factory
) -> None:
    huge = "b" * 1_048_000
    await hostile.send("ekko.wallets.update", json.dumps({"id": huge, "name": "x"}).encode(), 404)
    await hostile.send("ekko.wallets.delete", json.dumps({"id": huge}).encode(), 404)
    await still_serving(client, make)


async def test_a_record_too_large_to_relay_is_refused_before_commit(
    ekko: Ekko, hostile: Hostile, client: Client, make: Factory
) -> None:
    user = await make.create("users")
    await eventually(lambda: _idle(ekko), what="relay idle")
    before, published = await snapshot(ekko), ekko.relay.stats.published
    # 720 KB of request that becomes a 1.39 MB record: KV, the event and the reply could not carry it.
    steps = [{"id": "", "name": "", "type": ""} for _ in range(24_000)]
    payload = json.dumps({"name": "huge", "created_by": user["id"], "steps": steps}).encode()
    assert 700_000 < len(payload) < MAX_PAYLOAD
    reply = await hostile.send("ekko.workflows.create", payload, 413)
    assert reply.error["code"] == "payload_too_large"
    assert str(ekko.limit.record_budget) in reply.error["message"]
    assert reply.headers["Nats-Service-Error-Code"] == "413"
    assert await snapshot(ekko) == before
    assert ekko.relay.stats.published == published

    # An update that would grow a stored record past the limit is refused the same way.
    small = await client.ok("ekko.workflows.create", {"name": "small", "created_by": user["id"]})
    await eventually(lambda: _idle(ekko), what="relay idle")
    before, published = await snapshot(ekko), ekko.relay.stats.published
    grow = json.dumps({"id": small["id"], "steps": steps}).encode()
    reply = await hostile.send("ekko.workflows.update", grow, 413)
    assert reply.error["code"] == "payload_too_large"
    assert await snapshot(ekko) == before
    assert ekko.relay.stats.published == published
    assert (await client.ok("ekko.workflows.get", {"id": small["id"]}))["version"] == 1
    # Just under the limit is still accepted and relayed.
    fits = [{"id": "", "name": "", "type": ""} for _ in range(12_000)]
    done = await client.ok("ekko.workflows.update", {"id": small["id"], "steps": fits})
    assert done["version"] == 2
    await eventually(lambda: _idle(ekko), what="relay idle")
    await still_serving(client, make)


async def _idle(ekko: Ekko) -> bool:
    assert ekko.relay is not None
    return await ekko.relay.pending() == 0


async def test_list_pages_are_cut_by_size_and_the_cursor_walks_every_item_once(
    ekko: Ekko, client: Client, make: Factory
) -> None:
    created = set()
    for n in range(130):  # ~20 KB each: 60 of them no longer fit in one reply
        alert = await make.create("alerts", message=f"{n:05d}" + "m" * 9_995, query="q" * 10_000)
        created.add(alert["id"])
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        body = {"limit": 100, "sort": ["-created_at"], **({"cursor": cursor} if cursor else {})}
        msg = await client.nc.request("ekko.alerts.list", json.dumps(body).encode(), timeout=5)
        assert not (msg.headers or {}).get("Nats-Service-Error-Code"), msg.data[:300]
        assert len(msg.data) < MAX_PAYLOAD
        page = json.loads(msg.data)
        assert 0 < len(page["items"]) < 100
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(created), (len(seen), len(set(seen)))
    assert set(seen) == created
    assert pages >= 3
    # The `limit` still applies when the items are small.
    small = await client.ok("ekko.wallets.list", {"limit": 1})
    assert len(small["items"]) <= 1


@pytest.mark.parametrize("entity", ENTITY_ORDER)
async def test_every_entity_answers_huge_echoes_with_a_short_4xx(
    entity: str, hostile: Hostile, client: Client, make: Factory
) -> None:
    huge = "x" * 1_000_000
    await hostile.send(f"ekko.{entity}.get", json.dumps({"id": huge}).encode(), 404)
    await hostile.send(f"ekko.{entity}.delete", json.dumps({"id": huge}).encode(), 404)
    await hostile.send(f"ekko.{entity}.create", json.dumps({"u" * 300_000: 1}).encode(), 400)
    await hostile.send(f"ekko.{entity}.update", json.dumps({"id": "i", "u" * 300_000: 1}).encode(), 400)
    await hostile.send(f"ekko.{entity}.list", json.dumps({"sort": ["s" * 600_000]}).encode(), 400)
    await hostile.send(f"ekko.{entity}.list", json.dumps({"filters": {"f" * 600_000: {"eq": 1}}}).encode(), 400)
    await hostile.send(f"ekko.{entity}.list", json.dumps({"cursor": "c" * 1_000_000}).encode(), 400)
    await still_serving(client, make)
