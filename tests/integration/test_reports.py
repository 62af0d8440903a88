"""`ekko.reports.alert_stats` and `ekko.reports.wallet_overview` over real NATS, each checked
against figures this test computes in plain Python from the same rows (read back through
`<entity>.list`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from service.app import Ekko
from tests.client import Client, assert_rejected
from tests.factories import Factory

NOW = datetime.now(UTC)


async def every(client: Client, entity: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.ok(f"ekko.{entity}.list", {"limit": 1000, **({"cursor": cursor} if cursor else {})})
        rows += page["items"]
        if (cursor := page["next_cursor"]) is None:
            return rows


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def backdate(ekko: Ekko, entity: str, ages: dict[str, timedelta]) -> None:
    """Set created_at in the past (no subject may): the rows a range report must tell apart."""

    def write(uow: Any) -> None:
        for row_id, age in ages.items():
            when = (NOW - age).replace(tzinfo=None)
            uow.cursor.execute(f"UPDATE {entity} SET created_at = ? WHERE id = ?", [when, row_id])

    await ekko.db.write(write)


def expected_stats(alerts: list[dict[str, Any]], wallets: dict[str, dict[str, Any]], lo: Any, hi: Any) -> dict:
    chosen = [
        a
        for a in alerts
        if (lo is None or parse(a["created_at"]) >= lo) and (hi is None or parse(a["created_at"]) < hi)
    ]
    per_wallet = Counter(a["related_wallet_id"] for a in chosen if a["related_wallet_id"])
    top = sorted(per_wallet.items(), key=lambda item: (-item[1], item[0]))[:10]
    day_ago = datetime.now(UTC) - timedelta(days=1)
    return {
        "total": len(chosen),
        "by_status": dict(Counter(a["status"] for a in chosen)),
        "by_type": dict(Counter(a["type"] for a in chosen)),
        "by_priority": dict(Counter(a["priority"] for a in chosen)),
        "last_24h": sum(parse(a["created_at"]) >= day_ago for a in chosen),
        "top_wallets": [
            {
                "wallet_id": w,
                "name": wallets[w]["name"],
                "blockchain_symbol": wallets[w]["blockchain_symbol"],
                "alerts": n,
            }
            for w, n in top
        ],
    }


@pytest.fixture
async def alert_rows(ekko: Ekko, client: Client, make: Factory) -> tuple[list[dict], dict[str, dict]]:
    """12 wallets (the last without alerts), alerts spread over 10 days with ties in the counts."""
    wallets = [await make.create("wallets", name=f"w{i}") for i in range(12)]
    ages: dict[str, timedelta] = {}
    statuses, priorities = ("active", "resolved", "muted"), ("low", "medium", "high")
    for i in range(40):
        wallet = wallets[i % 11] if i % 7 else None  # every 7th alert names no wallet
        alert = await make.create(
            "alerts",
            type=("price", "volume", "balance")[i % 3],
            status=statuses[i % 2 if i < 30 else 2],
            priority=priorities[i % 3 if i % 5 else 2],
            related_wallet_id=wallet["id"] if wallet else None,
        )
        ages[alert["id"]] = timedelta(days=i % 10, minutes=5)
    await backdate(ekko, "alerts", ages)
    return await every(client, "alerts"), {w["id"]: w for w in await every(client, "wallets")}


async def test_alert_stats_over_every_alert_match_a_count_in_python(client: Client, alert_rows: Any) -> None:
    alerts, wallets = alert_rows
    reply = await client.ok("ekko.reports.alert_stats", {})
    assert reply == expected_stats(alerts, wallets, None, None)
    assert reply["total"] == 40 and 0 < reply["last_24h"] < 40
    counts = [w["alerts"] for w in reply["top_wallets"]]
    assert len(counts) == 10 and len(set(counts)) < len(counts)  # ties exist and were ordered by id


@pytest.mark.parametrize(("lo_days", "hi_days"), [(5, 2), (9, None), (None, 3), (3, 3), (400, 300)])
async def test_alert_stats_over_a_range_count_from_inclusive_to_exclusive(
    client: Client, alert_rows: Any, lo_days: int | None, hi_days: int | None
) -> None:
    alerts, wallets = alert_rows
    # Bounds exactly on a row's created_at: from keeps it, to leaves it out.
    on_row = {parse(a["created_at"]) for a in alerts}
    lo = None if lo_days is None else NOW - timedelta(days=lo_days, minutes=5)
    hi = None if hi_days is None else NOW - timedelta(days=hi_days, minutes=5)
    assert lo is None or lo_days > 10 or lo in on_row
    body = {k: v.isoformat() for k, v in (("from", lo), ("to", hi)) if v is not None}
    reply = await client.ok("ekko.reports.alert_stats", body)
    assert reply == expected_stats(alerts, wallets, lo, hi)
    if lo_days == hi_days or (lo_days or 0) > 100:
        assert reply == {
            "total": 0,
            "by_status": {},
            "by_type": {},
            "by_priority": {},
            "last_24h": 0,
            "top_wallets": [],
        }


async def test_alert_stats_of_an_empty_database_are_zero(client: Client) -> None:
    reply = await client.ok("ekko.reports.alert_stats")
    assert reply["total"] == 0 and reply["top_wallets"] == [] and reply["by_status"] == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"to": 12}, "to"),
        ({"since": "2024-01-01T00:00:00Z"}, "since"),
    ],
)
async def test_alert_stats_refuses_bad_arguments_naming_the_field(client: Client, body: Any, field: str) -> None:
    assert_rejected(await client.request("ekko.reports.alert_stats", body), 400, field)


# -- wallet_overview ----------------------------------------------------------------------


async def balance(make: Factory, wallet_id: str, age: timedelta, amount: str) -> dict[str, Any]:
    when = (NOW - age).isoformat()
    return await make.create("wallet_balances", wallet_id=wallet_id, timestamp=when, balance=amount)


def in_effect(rows: list[dict[str, Any]], at: datetime | None) -> dict[str, Any] | None:
    chosen = [r for r in rows if at is None or parse(r["timestamp"]) <= at]
    return max(chosen, key=lambda r: (parse(r["timestamp"]), r["id"]), default=None)


async def test_wallet_overview_matches_its_rows(ekko: Ekko, client: Client, make: Factory) -> None:
    wallet = await make.create("wallets", name="main")
    other = await make.create("wallets", name="other")
    for age, amount in ((timedelta(days=10), "1.5"), (timedelta(days=3), "2.25"), (timedelta(hours=2), "7.125")):
        await balance(make, wallet["id"], age, amount)
    await balance(make, other["id"], timedelta(hours=1), "99")  # another wallet's rows count for nothing
    for status in ("active", "active", "resolved"):
        await make.create("alerts", related_wallet_id=wallet["id"], status=status)
    await make.create("alerts", related_wallet_id=other["id"], status="muted")
    wid = wallet["id"]
    rule_in_condition = await make.create("alert_rules", condition={"wallet": wid.upper(), "above": 1})
    rule_in_action = await make.create("alert_rules", action={"notify": [{"wallet_ids": [wid]}]})
    await make.create("alert_rules", condition={"wallet": other["id"]})
    flow = await make.create("workflows", steps=[{"id": "s1", "name": "n", "type": "t", "config": {"w": wid}}])
    # The id in a step's name is not in its config: not listed.
    await make.create("workflows", steps=[{"id": "s1", "name": wid, "type": "t", "config": {}}])

    reply = await client.ok("ekko.reports.wallet_overview", {"wallet_id": wid.upper()})
    rows = [r for r in await every(client, "wallet_balances") if r["wallet_id"] == wid]
    now = datetime.now(UTC)
    latest = in_effect(rows, None)
    assert latest is not None
    assert reply["wallet"] == await client.ok("ekko.wallets.get", {"id": wid})
    assert reply["latest_balance"] == latest
    for key, ago in (("change_24h", timedelta(days=1)), ("change_7d", timedelta(days=7))):
        before = in_effect(rows, now - ago)
        assert before is not None
        assert Decimal(reply[key]) == Decimal(latest["balance"]) - Decimal(before["balance"])
    assert reply["change_24h"] == "4.875000000000000000" and reply["change_7d"] == "5.625000000000000000"
    alerts = [a for a in await every(client, "alerts") if a["related_wallet_id"] == wid]
    assert reply["alerts_by_status"] == dict(Counter(a["status"] for a in alerts)) == {"active": 2, "resolved": 1}
    assert [r["id"] for r in reply["alert_rules"]] == [rule_in_condition["id"], rule_in_action["id"]]
    assert [w["id"] for w in reply["workflows"]] == [flow["id"]]


async def test_wallet_overview_of_a_wallet_without_history_has_nulls(client: Client, make: Factory) -> None:
    bare = await make.create("wallets")
    reply = await client.ok("ekko.reports.wallet_overview", {"wallet_id": bare["id"]})
    assert reply["latest_balance"] is None and reply["change_24h"] is None and reply["change_7d"] is None
    assert reply["alerts_by_status"] == {} and reply["alert_rules"] == [] and reply["workflows"] == []
    young = await make.create("wallets")
    row = await balance(make, young["id"], timedelta(hours=3), "0.00000001")
    reply = await client.ok("ekko.reports.wallet_overview", {"wallet_id": young["id"]})
    assert reply["latest_balance"] == row  # no row 24 h ago: the change is unknown, not the whole balance
    assert reply["change_24h"] is None and reply["change_7d"] is None


async def test_wallet_overview_changes_are_exact_at_18_decimals(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    await balance(make, wallet["id"], timedelta(days=2), "12345678901234567890.000000000000000001")
    await balance(make, wallet["id"], timedelta(hours=1), "12345678901234567890.999999999999999999")
    reply = await client.ok("ekko.reports.wallet_overview", {"wallet_id": wallet["id"]})
    assert reply["change_24h"] == "0.999999999999999998" and reply["change_7d"] is None  # no row 7 d back


async def test_wallet_overview_of_an_unknown_wallet_is_404(client: Client) -> None:
    reply = await client.request("ekko.reports.wallet_overview", {"wallet_id": "00000000-0000-4000-8000-000000000000"})
    assert_rejected(reply, 404)


@pytest.mark.parametrize(("body", "field"), [({}, "wallet_id"), ({"wallet_id": "nope"}, "wallet_id")])
async def test_wallet_overview_refuses_bad_arguments_naming_the_field(client: Client, body: Any, field: str) -> None:
    assert_rejected(await client.request("ekko.reports.wallet_overview", body), 400, field)
