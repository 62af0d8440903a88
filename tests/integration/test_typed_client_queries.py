"""The typed client's list options, reports and search against the real service: each
typed reply holds what the same request sent raw (`tests.client.Client`) replies, and an
error reply raises its class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ekko_client import EkkoClient, Filters, InvalidRequest, NotFound
from ekko_client.schema.reports import AlertStats, SearchReply, WalletOverview
from ekko_client.schema.wallets import Wallet
from tests.client import Client, as_sent
from tests.factories import Factory


@pytest.fixture
async def wallets(make: Factory) -> list[dict[str, Any]]:
    """Six wallets: names main-0..main-2 and side-3..side-5, balances 0..5, one without a name."""
    rows = []
    for n in range(6):
        name = None if n == 5 else f"{'main' if n < 3 else 'side'}-{n}"
        rows.append(await make.create("wallets", name=name, balance=str(n), address=f"0x{n + 1:040x}"))
    return rows


async def test_count_adds_total_and_its_absence_leaves_none(typed: EkkoClient, wallets: list[dict]) -> None:
    counted = await typed.wallets.list(filters={"balance": {"gte": Decimal("2")}}, count=True, limit=1)
    assert (counted.total, len(counted.items)) == (4, 1)
    assert isinstance(counted.items[0], Wallet) and counted.next_cursor is not None
    assert (await typed.wallets.list(limit=1)).total is None


async def test_groups_patterns_and_sort_agree_with_the_raw_request(
    typed: EkkoClient, client: Client, wallets: list[dict]
) -> None:
    filters: dict[str, Any] = {
        "or": [{"name": {"ilike": "MAIN-%"}}, {"and": [{"balance": {"gt": 3}}, {"name": {"is_null": False}}]}],
        "name": {"like": "%-_"},
    }
    raw = await client.ok("ekko.wallets.list", {"filters": filters, "sort": ["-name"], "count": True})
    page = await typed.wallets.list(filters=filters, sort=["-name"], count=True)
    assert as_sent(page.items) == raw["items"] and page.total == raw["total"] == 4
    assert [w.name for w in page.items] == ["side-4", "main-2", "main-1", "main-0"]
    # Typed filter values go out as the service reads them (Decimal and datetime included).
    newer = await typed.wallets.list(
        filters={"balance": {"in": [Decimal("1"), Decimal("3")]}, "created_at": {"lt": datetime.now(UTC)}}
    )
    assert sorted(w.balance for w in newer.items) == [Decimal("1"), Decimal("3")]


async def test_select_and_include_give_json_objects_as_the_service_shapes_them(
    typed: EkkoClient, client: Client, make: Factory, wallets: list[dict]
) -> None:
    for wallet in wallets[:3]:
        await make.create("alerts", related_wallet_id=wallet["id"])
    body = {"select": ["id", "message"], "include": ["wallet"], "sort": ["created_at"]}
    raw = await client.ok("ekko.alerts.list", body)
    page = await typed.alerts.list(select=["id", "message"], include=["wallet"], sort=["created_at"])
    assert page.items == raw["items"] and len(page.items) == 3
    assert list(page.items[0]) == ["id", "message", "wallet"]
    assert page.items[0]["wallet"]["id"] == wallets[0]["id"]

    selected = await typed.wallets.list(select=["balance"], sort=["balance"], limit=2)
    assert selected.items == [{"balance": w["balance"]} for w in wallets[:2]]


async def test_iter_walks_every_page_with_the_new_options(typed: EkkoClient, wallets: list[dict]) -> None:
    group: Filters = {"or": [{"name": {"like": "main%"}}, {"name": {"is_null": True}}]}
    records = [w.id async for w in typed.wallets.iter(filters=group, sort=["-balance"], page_size=2)]
    assert records == [wallets[n]["id"] for n in (5, 2, 1, 0)]
    objects = [w async for w in typed.wallets.iter(filters=group, sort=["-balance"], select=["id"], page_size=3)]
    assert objects == [{"id": i} for i in records]


async def test_bad_list_options_raise_invalid_request_naming_the_field(typed: EkkoClient) -> None:
    for call, field in (
        (typed.wallets.list(select=["colour"]), "select[0]"),
        (typed.wallets.list(include=["parent"]), "include[0]"),
        (typed.wallets.list(filters={"or": [{"name": {"like": "a\\"}}]}), "filters.or[0].name.like"),
        (typed.wallets.list(sort=["name", "name"]), "sort[1]"),
    ):
        with pytest.raises(InvalidRequest) as bad:
            await call
        assert bad.value.status == 400 and field in bad.value.fields, (field, bad.value.fields)


async def test_alert_stats_are_typed_and_agree_with_the_raw_reply(
    typed: EkkoClient, client: Client, make: Factory, wallets: list[dict]
) -> None:
    for n, status in enumerate(("active", "active", "resolved")):
        await make.create("alerts", related_wallet_id=wallets[n % 2]["id"], status=status)
    now = datetime.now(UTC)
    lo, hi = now - timedelta(hours=1), now + timedelta(hours=1)
    stats = await typed.reports.alert_stats(from_=lo, to=hi)
    assert isinstance(stats, AlertStats)
    raw = await client.ok("ekko.reports.alert_stats", {"from": lo.isoformat(), "to": hi.isoformat()})
    assert as_sent(stats) == raw
    assert (stats.total, stats.by_status, stats.top_wallets[0].alerts) == (3, {"active": 2, "resolved": 1}, 2)
    assert as_sent(await typed.reports.alert_stats()) == await client.ok("ekko.reports.alert_stats", {})
    assert (await typed.reports.alert_stats(to=lo)).total == 0
    with pytest.raises(InvalidRequest) as backwards:
        await typed.reports.alert_stats(from_=hi, to=lo)
    assert backwards.value.fields == ["to"]


async def test_wallet_overview_is_typed_and_agrees_with_the_raw_reply(
    typed: EkkoClient, client: Client, make: Factory, wallets: list[dict]
) -> None:
    wallet_id = wallets[1]["id"]
    await make.create("wallet_balances", wallet_id=wallet_id, balance="7.25")
    await make.create("alerts", related_wallet_id=wallet_id)
    overview = await typed.reports.wallet_overview(wallet_id)
    assert isinstance(overview, WalletOverview) and isinstance(overview.wallet, Wallet)
    assert as_sent(overview) == await client.ok("ekko.reports.wallet_overview", {"wallet_id": wallet_id})
    assert overview.latest_balance is not None and overview.latest_balance.balance == Decimal("7.25")
    with pytest.raises(NotFound) as missing:
        await typed.reports.wallet_overview("00000000-0000-4000-8000-000000000000")
    assert missing.value.subject == "ekko.reports.wallet_overview"
    with pytest.raises(InvalidRequest) as bad:
        await typed.reports.wallet_overview("not-a-uuid")
    assert bad.value.fields == ["wallet_id"]


async def test_search_is_typed_and_agrees_with_the_raw_reply(
    typed: EkkoClient, client: Client, wallets: list[dict]
) -> None:
    found = await typed.search("MAIN", types=["wallets"], limit=2)
    assert isinstance(found, SearchReply)
    assert as_sent(found) == await client.ok("ekko.search", {"q": "MAIN", "types": ["wallets"], "limit": 2})
    assert [(h.type, h.title, h.score) for h in found.hits] == [("wallets", "main-0", 2), ("wallets", "main-1", 2)]
    assert as_sent(await typed.search("side-4")) == await client.ok("ekko.search", {"q": "side-4"})
    for call, field in ((typed.search(""), "q"), (typed.search("x", types=["secrets"]), "types[0]")):  # type: ignore[list-item]
        with pytest.raises(InvalidRequest) as bad:
            await call
        assert bad.value.fields == [field]
