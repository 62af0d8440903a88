"""`ekko.search` over real NATS: hits and their order checked against a plain-Python search
over the same rows (read back through `<entity>.list`); bad arguments; no secret in a hit.
Who may ask: tests/security/test_permissions.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.app import Ekko
from tests.client import Client, assert_rejected
from tests.factories import Factory
from tests.support import SEARCH_PROMISED as PROMISED


def score(value: str | None, q: str) -> int:
    if value is None:
        return 0
    value, q = value.lower(), q.lower()
    return 3 if value == q else 2 if value.startswith(q) else 1 if q in value else 0


async def rows_of(client: Client, entity: str) -> list[dict[str, Any]]:
    return (await client.ok(f"ekko.{entity}.list", {"limit": 1000}))["items"]


async def expected_hits(client: Client, q: str, types: list[str], limit: int) -> list[dict[str, Any]]:
    hits = []
    for rank, (entity, (fields, title)) in enumerate(PROMISED.items()):
        if entity not in types:
            continue
        for row in await rows_of(client, entity):
            best = max(score(row[f], q) for f in fields)
            if best:
                name = next(row[f] for f in title if row[f] is not None)[:200]
                hits.append(
                    (
                        (-best, rank, name.lower(), row["id"]),
                        {"type": entity, "id": row["id"], "title": name, "score": best},
                    )
                )
    return [hit for _, hit in sorted(hits, key=lambda h: h[0])][:limit]


@pytest.fixture
async def searchable(client: Client, make: Factory) -> None:
    """Names that match "Gold" exactly, as a prefix and inside, in several entities and cases."""
    await make.create("wallets", name="gold")
    await make.create("wallets", name="Goldfinch")
    await make.create("wallets", name="Old gold coins")
    await make.create("wallets", name=None, address="0x" + "60" * 20)  # title falls back to the address
    await make.create("alerts", message="GOLD", type="price")
    await make.create("alerts", message="price of gold", type="gold-watch")
    await make.create("alerts", message="gold " + "long " * 1000, type="x")  # its title is cut
    await make.create("users", email="goldie@example.com", full_name=None, password="a secret pw")
    await make.create("users", email="someone@example.com", full_name="Gold")
    await make.create("alert_rules", name="rule", description="when gold drops")
    await make.create("workflows", name="Gold flow")
    await make.create("agents", name="agent", type="gold")
    await make.create("wallets", name="100% sure_thing")
    await make.create("wallets", name="100 percent sure thing")
    await make.create("wallets", name="path\\to\\it")
    await make.create("wallets", name="path to it")


ALL = list(PROMISED)


@pytest.mark.parametrize(
    ("q", "types", "limit"),
    [
        ("gold", ALL, 20),
        ("GoLd", ALL, 20),
        ("gold", ["wallets"], 20),
        ("gold", ["users", "agents"], 20),
        ("gold", ALL, 3),
        ("0x6060", ALL, 20),
        ("\\", ALL, 20),
        ("nothing like it", ALL, 20),
    ],
)
async def test_search_hits_and_order_match_a_search_in_python(
    client: Client, searchable: None, q: str, types: list[str], limit: int
) -> None:
    body: dict[str, Any] = {"q": q, "limit": limit}
    if types != ALL:
        body["types"] = types
    reply = await client.ok("ekko.search", body)
    assert reply["hits"] == await expected_hits(client, q, types, limit)


async def test_search_ranks_exact_above_prefix_above_substring(client: Client, searchable: None) -> None:
    hits = (await client.ok("ekko.search", {"q": "gold", "types": ["wallets"]}))["hits"]
    assert [(h["title"], h["score"]) for h in hits] == [("gold", 3), ("Goldfinch", 2), ("Old gold coins", 1)]


async def test_search_takes_percent_and_underscore_literally(client: Client, searchable: None) -> None:
    for q in ("100%", "sure_thing", "% sure"):
        hits = (await client.ok("ekko.search", {"q": q}))["hits"]
        assert [h["title"] for h in hits] == ["100% sure_thing"], q
    assert (await client.ok("ekko.search", {"q": "_"}))["hits"][0]["title"] == "100% sure_thing"
    for q in ("\\to", "h\\t"):  # the escape character itself is literal too
        assert [h["title"] for h in (await client.ok("ekko.search", {"q": q}))["hits"]] == ["path\\to\\it"], q


async def test_search_never_returns_a_secret(client: Client, ekko: Ekko, searchable: None) -> None:
    stored = await ekko.db.read(lambda cur: cur.execute("SELECT password_hash FROM users").fetchall())
    assert stored
    for (secret,) in stored:
        for q in (secret, secret[:20], secret[7:30]):
            reply = await client.request("ekko.search", {"q": q[:200]})
            assert reply.ok and reply.body["hits"] == []
    everything = await client.request("ekko.search", {"q": "e", "limit": 100})
    text = json.dumps(everything.body)
    assert "goldie@example.com" in text and not any(secret in text for (secret,) in stored)
    assert {h["type"] for h in everything.body["hits"]} >= {"users"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": 5}, "q"),
        ({"q": "a", "types": ["wallets", "passwords"]}, "types[1]"),
        ({"q": "a", "types": []}, "types"),
        ({"q": "a", "types": "wallets"}, "types"),
        ({"q": "a", "limit": 0}, "limit"),
        ({"q": "a", "limit": 101}, "limit"),
        ({"q": "a", "limit": 2**70}, "limit"),
        ({"q": "a", "page": 2}, "page"),
    ],
)
async def test_search_refuses_bad_arguments_naming_the_field(client: Client, body: Any, field: str) -> None:
    assert_rejected(await client.request("ekko.search", body), 400, field)
