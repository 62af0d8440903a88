"""search_terms, the table `ekko.search` reads, stays equal to the rows it derives from after
random creates, updates and deletes (many in flight, so the writer groups them), checked
against the same rows read back over NATS and turned into search rows in plain Python."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from service.app import Ekko
from tests.client import Client
from tests.factories import Factory
from tests.support import SEARCH_PROMISED as PROMISED

# What each update changes: a searchable field, or one search ignores (wallets.status).
EDITS = {
    "wallets": ("name", "status"),
    "alerts": ("message", "type", "status"),
    "users": ("full_name",),
    "agents": ("name", "type"),
}
WORDS = ("Gold", "silver", "ÉCLAIR", "straße", "100%", "a_b", "wallet 42", "Ωmega", "🙂 smile")


def grams(text: str) -> int:
    """The trigram mask, as migration 9 and service.store.search compute it in SQL."""
    mask = 0
    for i in range(len(text) - 2):
        mask |= 1 << ((ord(text[i]) * 1031 + ord(text[i + 1]) * 37 + ord(text[i + 2])) % 63)
    return mask


def expected_rows(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    out = []
    for entity, (fields, title_fields) in PROMISED.items():
        for row in rows[entity]:
            title = next(row[f] for f in title_fields if row[f] is not None)[:200]
            for field in fields:
                if (value := row[field]) is not None:
                    out.append((entity, row["id"], value.lower(), grams(value.lower()), title))
    return sorted(out)


async def all_rows(client: Client) -> dict[str, list[dict[str, Any]]]:
    return {e: (await client.ok(f"ekko.{e}.list", {"limit": 1000}))["items"] for e in PROMISED}


async def stored_rows(ekko: Ekko) -> list[tuple[Any, ...]]:
    rows = await ekko.db.read(
        lambda cur: cur.execute("SELECT entity, id, text, grams, title FROM search_terms").fetchall()
    )
    return sorted(rows)


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


async def test_search_terms_follow_random_creates_updates_and_deletes(
    client: Client, make: Factory, ekko: Ekko
) -> None:
    rng = random.Random(11)
    made: dict[str, list[str]] = {e: [] for e in EDITS}
    for entity in EDITS:  # a few rows of each, with searchable text that varies in case and script
        fields = {"name": text(rng)} if entity in ("wallets", "agents") else {}
        if entity == "alerts":
            fields = {"message": text(rng), "type": rng.choice(WORDS)}
        made[entity] += [(await make.create(entity, **fields))["id"] for _ in range(4)]
    await make.create("alert_rules", name=text(rng), description=text(rng))
    await make.create("workflows", name=text(rng), description=None)

    async def step(entity: str) -> None:
        ids = made[entity]
        action = rng.choice(["create", "update", "update", "delete"]) if ids else "create"
        if action == "create":
            ids.append((await make.create(entity))["id"])
        elif action == "update":
            field = rng.choice(EDITS[entity])
            value = rng.choice(["active", "inactive"]) if field == "status" and entity == "wallets" else text(rng)
            if field == "status" and entity == "alerts":
                value = rng.choice(["active", "resolved"])
            reply = await client.request(f"ekko.{entity}.update", {"id": rng.choice(ids), field: value})
            assert reply.ok or reply.status == 404, reply.body  # 404: an alert gone with its wallet
        else:
            victim = ids.pop(rng.randrange(len(ids)))
            await client.ok(f"ekko.{entity}.delete", {"id": victim, "cascade": True})
            if entity == "wallets":  # its alerts went with it
                alive = {a["id"] for a in (await client.ok("ekko.alerts.list", {"limit": 1000}))["items"]}
                made["alerts"] = [a for a in made["alerts"] if a in alive]

    for _ in range(6):
        # Sequential per entity (an update must not race a delete of the same id), parallel across.
        await asyncio.gather(*(step(entity) for entity in EDITS))
        await asyncio.gather(*(step(entity) for entity in ("alerts", "agents")))
    assert await stored_rows(ekko) == expected_rows(await all_rows(client))


async def test_search_finds_the_new_text_and_forgets_the_old(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets", name="Copper kettle")
    await client.ok("ekko.wallets.update", {"id": wallet["id"], "name": "Bronze pot"})
    assert (await client.ok("ekko.search", {"q": "copper"}))["hits"] == []
    hits = (await client.ok("ekko.search", {"q": "BRONZE POT"}))["hits"]
    assert [(h["id"], h["score"]) for h in hits] == [(wallet["id"], 3)]
    await client.ok("ekko.wallets.delete", {"id": wallet["id"]})
    assert (await client.ok("ekko.search", {"q": "bronze"}))["hits"] == []


async def test_a_row_matching_in_two_fields_is_one_hit_with_its_best_score(client: Client, make: Factory) -> None:
    """Alerts match on message and type; every limit gets the same hits as Python's search."""
    made = []
    for message, kind in [("ruby", "ruby"), ("ruby red", "ruby"), ("a ruby", "rubyish"), ("ruby", "x"), ("ok", "ruby")]:
        made.append(await make.create("alerts", message=message, type=kind))

    def best(alert: dict[str, Any]) -> int:
        return max(
            3 if v == "ruby" else 2 if v.startswith("ruby") else 1 if "ruby" in v else 0
            for v in (alert["message"], alert["type"])
        )

    expected = sorted(
        ({"type": "alerts", "id": a["id"], "title": a["message"], "score": best(a)} for a in made),
        key=lambda h: (-h["score"], h["title"].lower(), h["id"]),
    )
    for limit in range(1, len(made) + 1):
        reply = await client.ok("ekko.search", {"q": "RUBY", "types": ["alerts"], "limit": limit})
        assert reply["hits"] == expected[:limit], limit
