"""`ekko.<entity>.list` closer to PostgREST, over real NATS: count, include, sort on any
scalar field (NULLs too), or/and groups, like/ilike and select, each checked against plain
Python over the rows the test created."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from service.app import Ekko
from service.model.registry import ENTITIES
from service.store.listing import MAX_GROUP_DEPTH
from service.usecases import listing
from service.usecases.listing import JOIN_PARENTS_UP_TO, ParentSizes
from tests.client import Client, assert_rejected
from tests.factories import Factory
from tests.support import like_matches, python_sorted

NAMES = [None, "Main", "main", None, "savings", "Main", "b_x", "100%", None, "bAx", "main"]


async def walk(client: Client, entity: str, request: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Every page of a list request, following next_cursor; every page's total must agree."""
    items: list[dict[str, Any]] = []
    cursor, totals = None, set()
    for _ in range(100):
        body = await client.ok(f"ekko.{entity}.list", {**request, "limit": limit, "cursor": cursor})
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        totals.add(body.get("total", "absent"))
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(totals) == 1, totals
            return items
    raise AssertionError("pagination does not end")


@pytest.fixture
async def wallets(make: Factory) -> list[dict[str, Any]]:
    """Wallets whose names tie and are null, balances tie (three values)."""
    return [
        await make.create("wallets", name=name, balance=str(n % 3), status="active" if n % 4 else "frozen")
        for n, name in enumerate(NAMES)
    ]


def value_of(item: dict[str, Any], field: str) -> Any:
    value = item[field]
    return Decimal(value) if field == "balance" and value is not None else value


# -- count -------------------------------------------------------------------------


async def test_count_adds_the_total_of_matching_rows_whatever_the_page(client: Client, wallets: list) -> None:
    frozen = [w for w in wallets if w["status"] == "frozen"]
    body = await client.ok("ekko.wallets.list", {"filters": {"status": "frozen"}, "count": True, "limit": 1})
    assert body["total"] == len(frozen) > 1 and len(body["items"]) == 1
    listed = await walk(client, "wallets", {"filters": {"status": "frozen"}, "count": True}, limit=1)
    assert sorted(i["id"] for i in listed) == sorted(w["id"] for w in frozen)
    everything = await client.ok("ekko.wallets.list", {"count": True, "limit": 2})
    assert everything["total"] == len(wallets)
    none = await client.ok("ekko.wallets.list", {"filters": {"status": "gone"}, "count": True})
    assert none == {"items": [], "next_cursor": None, "total": 0}
    plain = await client.ok("ekko.wallets.list", {"limit": 2})
    assert "total" not in plain
    assert "total" not in await client.ok("ekko.wallets.list", {"count": False})


# -- sort on nullable fields -------------------------------------------------------


@pytest.mark.parametrize(
    "sort", [["name"], ["-name"], ["name", "-balance"], ["-name", "balance"], ["balance", "-name"]]
)
async def test_a_nullable_sort_walks_every_row_once_in_python_order(
    sort: list[str], client: Client, wallets: list
) -> None:
    keys = [(s.lstrip("-"), s.startswith("-")) for s in sort] + [("id", False)]
    expected = [w["id"] for w in python_sorted(wallets, keys, value_of)]
    for limit in (1, 2, 3):
        listed = await walk(client, "wallets", {"sort": sort}, limit)
        assert [i["id"] for i in listed] == expected, (sort, limit)


# -- filters: or groups, like/ilike ------------------------------------------------


async def test_or_groups_and_patterns_match_what_python_matches(client: Client, wallets: list) -> None:
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"name": {"like": "main"}}, lambda w: w["name"] is not None and like_matches("main", w["name"])),
        ({"name": {"ilike": "MAIN"}}, lambda w: w["name"] is not None and w["name"].lower() == "main"),
        ({"name": {"like": "b_x"}}, lambda w: w["name"] in ("b_x", "bAx")),
        ({"name": {"like": "b\\_x"}}, lambda w: w["name"] == "b_x"),
        ({"name": {"like": "%\\%"}}, lambda w: w["name"] == "100%"),
        ({"name": {"ilike": "%A%"}}, lambda w: w["name"] is not None and "a" in w["name"].lower()),
        (
            {"or": [{"name": {"is_null": True}}, {"balance": 2, "status": "frozen"}]},
            lambda w: w["name"] is None or (w["balance"] == "2.00000000" and w["status"] == "frozen"),
        ),
        (
            {"status": "active", "or": [{"name": "savings"}, {"or": [{"name": {"like": "M%"}}, {"balance": 0}]}]},
            lambda w: (
                w["status"] == "active"
                and (w["name"] == "savings" or (w["name"] or "").startswith("M") or Decimal(w["balance"]) == 0)
            ),
        ),
        (
            {"and": [{"or": [{"balance": 0}, {"balance": 1}]}, {"or": [{"name": "main"}, {"name": "Main"}]}]},
            lambda w: Decimal(w["balance"]) in (0, 1) and w["name"] in ("main", "Main"),
        ),
    ]
    for filters, matches in cases:
        listed = await walk(client, "wallets", {"filters": filters, "count": True}, limit=2)
        expected = sorted(w["id"] for w in wallets if matches(w))
        assert [i["id"] for i in listed] == expected, filters
        total = (await client.ok("ekko.wallets.list", {"filters": filters, "count": True}))["total"]
        assert total == len(expected), filters


# -- select ------------------------------------------------------------------------


async def test_select_returns_only_those_fields_and_the_cursor_still_walks(client: Client, wallets: list) -> None:
    listed = await walk(client, "wallets", {"select": ["address"], "sort": ["-name"]}, limit=3)
    keys = [("name", True), ("id", False)]
    assert listed == [{"address": w["address"]} for w in python_sorted(wallets, keys, value_of)]
    page = await client.ok("ekko.wallets.list", {"select": ["balance", "id"], "limit": 1})
    assert list(page["items"][0]) == ["balance", "id"]


# -- include -----------------------------------------------------------------------


async def query_count(client: Client, key: str) -> int:
    return (await client.ok("ekko.metrics"))["queries_ms"].get(key, {"count": 0})["count"]


@pytest.mark.parametrize(("join_up_to", "parent_queries"), [(0, 1), (JOIN_PARENTS_UP_TO, 0)], ids=["index", "join"])
async def test_include_embeds_each_alerts_wallet_with_one_query_per_page(
    client: Client, make: Factory, wallets: list, monkeypatch: pytest.MonkeyPatch, join_up_to: int, parent_queries: int
) -> None:
    """Parents by their ids in one query after the page's, or (a small parent table) joined
    into the page's own statement (decision 56): never a query per item."""
    monkeypatch.setattr(listing, "PARENT_SIZES", ParentSizes(join_up_to))  # its own counts, none cached
    alerts = [await make.create("alerts", related_wallet_id=wallets[n % 3]["id"]) for n in range(7)]
    alerts.append(await make.create("alerts", related_wallet_id=None))
    by_id = {w["id"]: w for w in wallets}
    before = (await query_count(client, "wallets.get_many_encoded"), await query_count(client, "wallets.get"))
    body = await client.ok("ekko.alerts.list", {"include": ["wallet"], "limit": 100, "count": True})
    after = (await query_count(client, "wallets.get_many_encoded"), await query_count(client, "wallets.get"))
    assert (after[0] - before[0], after[1] - before[1]) == (parent_queries, 0), "one query for the whole page"
    assert body["total"] == len(alerts) and len(body["items"]) == len(alerts)
    for item in body["items"]:
        wallet_id = item["related_wallet_id"]
        assert item["wallet"] == (None if wallet_id is None else by_id[wallet_id]), item
    plain = {a["id"]: a for a in alerts}
    assert all({k: v for k, v in i.items() if k != "wallet"} == plain[i["id"]] for i in body["items"])
    selected = await walk(client, "alerts", {"include": ["wallet"], "select": ["status"], "sort": ["type"]}, limit=3)
    assert [i["wallet"] for i in selected] == [
        by_id.get(a["related_wallet_id"]) for a in python_sorted(alerts, [("type", False), ("id", False)], value_of)
    ]
    assert all(list(i) == ["status", "wallet"] for i in selected)


async def test_an_include_whose_parent_is_gone_embeds_null(ekko: Ekko, client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    alert = await make.create("alerts", related_wallet_id=wallet["id"])
    # A row left behind by data that predates the foreign key checks: deleted under the service.
    await ekko.db.write(lambda uow: uow.repo(ENTITIES["wallets"]).delete(wallet["id"]))
    body = await client.ok("ekko.alerts.list", {"include": ["wallet"]})
    assert body["items"] == [{**alert, "wallet": None}]


async def test_balances_executions_and_creators_are_includable(client: Client, make: Factory) -> None:
    balance = await make.create("wallet_balances")
    wallet = await client.ok("ekko.wallets.get", {"id": balance["wallet_id"]})
    page = await client.ok("ekko.wallet_balances.list", {"include": ["wallet"]})
    assert page["items"] == [{**balance, "wallet": wallet}]
    execution = await make.create("workflow_executions")
    workflow = await client.ok("ekko.workflows.get", {"id": execution["workflow_id"]})
    page = await client.ok("ekko.workflow_executions.list", {"include": ["workflow"]})
    assert page["items"] == [{**execution, "workflow": workflow}]
    rule = await make.create("alert_rules")
    raw = await client.nc.request("ekko.alert_rules.list", b'{"include": ["user"]}', timeout=5)
    assert b"password" not in raw.data and b"$2b$" not in raw.data
    (item,) = json.loads(raw.data)["items"]
    assert item["user"] == await client.ok("ekko.users.get", {"id": rule["created_by"]})


async def test_include_and_count_pages_are_still_cut_to_max_payload(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets", name="w" * 200)
    created = {
        (await make.create("alerts", related_wallet_id=wallet["id"], message=f"{n:03d}" + "m" * 9_997))["id"]
        for n in range(120)
    }
    seen: list[str] = []
    cursor = None
    while True:
        body = {"limit": 1000, "include": ["wallet"], "count": True, "cursor": cursor}
        msg = await client.nc.request("ekko.alerts.list", json.dumps(body).encode(), timeout=5)
        assert not (msg.headers or {}).get("Nats-Service-Error-Code"), msg.data[:300]
        assert len(msg.data) <= client.nc.max_payload - 1024
        page = json.loads(msg.data)
        assert page["total"] == len(created) and 0 < len(page["items"]) < len(created)
        assert all(i["wallet"]["name"] == "w" * 200 for i in page["items"])
        seen.extend(i["id"] for i in page["items"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen)) == len(created) and set(seen) == created


# -- bad requests ------------------------------------------------------------------


async def test_bad_list_requests_are_400s_naming_the_field(client: Client, make: Factory) -> None:
    await make.create("alerts")
    deep: dict[str, Any] = {"status": "active"}
    for _ in range(MAX_GROUP_DEPTH + 1):
        deep = {"or": [deep]}
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("alerts", {"include": ["wallet", "user"]}, "include[1]"),
        ("alerts", {"include": ["wallets"]}, "include[0]"),
        ("wallets", {"include": ["wallet"]}, "include[0]"),
        ("alerts", {"include": "wallet"}, "include"),
        ("alerts", {"select": ["id", "nope"]}, "select[1]"),
        ("alerts", {"select": []}, "select"),
        ("users", {"select": ["email", "password_hash"]}, "select[1]"),
        ("users", {"filters": {"password_hash": {"like": "%"}}}, "filters.password_hash"),
        ("users", {"sort": ["password_hash"]}, "sort[0]"),
        ("alerts", {"sort": ["type", "job_spec"]}, "sort[1]"),
        ("alerts", {"count": "yes"}, "count"),
        ("alerts", {"filters": {"or": []}}, "filters.or"),
        ("alerts", {"filters": {"or": [{"status": "a"}, 1]}}, "filters.or[1]"),
        ("alerts", {"filters": deep}, "filters" + ".or[0]" * MAX_GROUP_DEPTH + ".or"),
        ("alerts", {"filters": {"or": [{"version": n} for n in range(200)]}}, "filters.or"),
        ("alerts", {"filters": {"message": {"like": "50\\"}}}, "filters.message.like"),
        ("alerts", {"filters": {"version": {"ilike": "1%"}}}, "filters.version.ilike"),
        ("alerts", {"filters": {"notifications_enabled": {"like": "t%"}}}, "filters.notifications_enabled.like"),
    ]
    for entity, request, field in bad:
        assert_rejected(await client.request(f"ekko.{entity}.list", request), 400, field)
