"""The balance subjects over real NATS and DuckDB, each answer checked against plain Python
over the same rows: out-of-order timestamps, ties (broken by id), 18-decimal amounts,
wallets without rows, carried-forward values, empty ranges, and the rows changing after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import pytest

from tests.client import Client, assert_rejected
from tests.factories import Factory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
STEPS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}
EXACT = Context(prec=80)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def start_of(interval: str, at: datetime) -> datetime:
    if interval == "1h":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "1d" else day - timedelta(days=day.weekday())


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first; equal timestamps by id."""
    return sorted(rows, key=lambda r: (when(r["timestamp"]), r["id"]))


def dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def expected_history(rows: list[dict[str, Any]], interval: str) -> list[dict[str, Any]]:
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for row in ordered(rows):
        groups.setdefault(start_of(interval, when(row["timestamp"])), []).append(row)
    return [
        {
            "start": start,
            "first": Decimal(group[0]["balance"]),
            "last": Decimal(group[-1]["balance"]),
            "min": min(Decimal(r["balance"]) for r in group),
            "max": max(Decimal(r["balance"]) for r in group),
            "count": len(group),
            "last_fiat_value": dec(group[-1]["fiat_value"]),
        }
        for start, group in sorted(groups.items())
    ]


def as_points(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "start": when(p["start"]),
            **{k: Decimal(p[k]) for k in ("first", "last", "min", "max")},
            "count": p["count"],
            "last_fiat_value": dec(p["last_fiat_value"]),
        }
        for p in reply["points"]
    ]


def expected_portfolio(rows: list[dict[str, Any]], start: datetime, end: datetime, interval: str) -> list[Any]:
    points, step = [], STEPS[interval]
    at = start_of(interval, start)
    while at < end:
        value = Decimal(0)
        for wallet in {r["wallet_id"] for r in rows}:
            before = [r for r in ordered(rows) if r["wallet_id"] == wallet and when(r["timestamp"]) < at + step]
            if before and before[-1]["fiat_value"] is not None:
                value = EXACT.add(value, Decimal(before[-1]["fiat_value"]))
        points.append((at, value))
        at += step
    return points


async def check_every_answer(client: Client, rows: list[dict[str, Any]], wallets: list[dict[str, Any]]) -> None:
    by_wallet = {w["id"]: [r for r in rows if r["wallet_id"] == w["id"]] for w in wallets}
    # latest, and wallets.balance following it
    latest = await client.ok("ekko.wallet_balances.latest", {})
    newest = {wid: ordered(rs)[-1] for wid, rs in by_wallet.items() if rs}
    assert {r["wallet_id"]: r["id"] for r in latest["items"]} == {wid: r["id"] for wid, r in newest.items()}
    some = await client.ok("ekko.wallet_balances.latest", {"wallet_ids": [w["id"] for w in wallets[1:]]})
    assert {r["wallet_id"] for r in some["items"]} == {w["id"] for w in wallets[1:] if by_wallet[w["id"]]}
    for wallet in wallets:
        got = await client.ok("ekko.wallets.get", {"id": wallet["id"]})
        if by_wallet[wallet["id"]]:
            assert Decimal(got["balance"]) == Decimal(newest[wallet["id"]]["balance"])
    # at: every row's own time, a moment before the first row (404), between rows
    for wid, rs in by_wallet.items():
        for row in rs:
            for moment in (when(row["timestamp"]), when(row["timestamp"]) + timedelta(minutes=1)):
                due = [r for r in ordered(rs) if when(r["timestamp"]) <= moment][-1]
                got = await client.ok("ekko.wallet_balances.at", {"wallet_id": wid, "at": iso(moment)})
                assert got["id"] == due["id"], (moment, got, due)
        first = min((when(r["timestamp"]) for r in rs), default=T0)
        reply = await client.request(
            "ekko.wallet_balances.at", {"wallet_id": wid, "at": iso(first - timedelta(seconds=1))}
        )
        assert_rejected(reply, 404)
    # history, each interval, whole and a part; performance over the same ranges
    for wid, rs in by_wallet.items():
        for interval in STEPS:
            got = await client.ok("ekko.wallet_balances.history", {"wallet_id": wid, "interval": interval})
            assert as_points(got) == expected_history(rs, interval)
            frm, to = T0 + timedelta(hours=1, minutes=30), T0 + timedelta(days=2)
            part = [r for r in rs if start_of(interval, frm) <= start_of(interval, when(r["timestamp"])) < to]
            body = {"wallet_id": wid, "interval": interval, "from": iso(frm), "to": iso(to)}
            assert as_points(await client.ok("ekko.wallet_balances.history", body)) == expected_history(part, interval)
        for frm, to in (
            (T0 - timedelta(days=30), T0 + timedelta(days=30)),
            (T0 + timedelta(hours=1), T0 + timedelta(days=1)),
        ):
            inside = ordered([r for r in rs if frm <= when(r["timestamp"]) < to])
            got = await client.ok(
                "ekko.wallet_balances.performance", {"wallet_id": wid, "from": iso(frm), "to": iso(to)}
            )
            assert got["count"] == len(inside)
            if not inside:
                assert got["first"] is None and got["avg"] is None and got["change_pct"] is None
                continue
            amounts = [Decimal(r["balance"]) for r in inside]
            first, last = amounts[0], amounts[-1]
            assert (Decimal(got["first"]), Decimal(got["last"])) == (first, last)
            assert (Decimal(got["min"]), Decimal(got["max"])) == (min(amounts), max(amounts))
            assert Decimal(got["change"]) == last - first
            total = Decimal(0)
            for amount in amounts:  # the default context keeps 28 digits: add exactly
                total = EXACT.add(total, amount)
            avg = EXACT.divide(total, len(amounts)).quantize(Decimal("1e-18"), ROUND_HALF_EVEN, EXACT)
            assert Decimal(got["avg"]) == avg
            if first == 0:
                assert got["change_pct"] is None
            else:
                pct = EXACT.divide((last - first) * 100, first).quantize(Decimal("1e-8"), ROUND_HALF_EVEN, EXACT)
                assert Decimal(got["change_pct"]) == pct
    # reports
    stats = await client.ok("ekko.reports.wallet_stats", {})
    assert stats["total"] == len(wallets)
    assert stats["by_status"] == {s: sum(w["status"] == s for w in wallets) for s in {w["status"] for w in wallets}}
    chains = {}
    for wallet in wallets:
        n, bal, fiat = chains.get(wallet["blockchain_symbol"], (0, Decimal(0), Decimal(0)))
        row = newest.get(wallet["id"])
        chains[wallet["blockchain_symbol"]] = (
            n + 1,
            EXACT.add(bal, Decimal(row["balance"]) if row else 0),
            EXACT.add(fiat, (dec(row["fiat_value"]) or 0) if row else 0),
        )
    assert {
        c["blockchain_symbol"]: (c["wallets"], Decimal(c["balance"]), Decimal(c["fiat_value"]))
        for c in stats["by_chain"]
    } == chains
    for interval, frm, to in (
        ("1h", T0 - timedelta(hours=2), T0 + timedelta(hours=30)),
        ("1d", T0 - timedelta(days=3), T0 + timedelta(days=9)),
    ):
        got = await client.ok("ekko.reports.portfolio_history", {"from": iso(frm), "to": iso(to), "interval": interval})
        assert [(when(p["start"]), Decimal(p["fiat_value"])) for p in got["points"]] == expected_portfolio(
            rows, frm, to, interval
        )
        eth = [r for r in rows if r["wallet_id"] in {w["id"] for w in wallets if w["blockchain_symbol"] == "ETH"}]
        body = {"from": iso(frm), "to": iso(to), "interval": interval, "blockchain_symbol": "ETH"}
        got = await client.ok("ekko.reports.portfolio_history", body)
        assert [(when(p["start"]), Decimal(p["fiat_value"])) for p in got["points"]] == expected_portfolio(
            eth, frm, to, interval
        )


def item(wallet: str, minutes: float, balance: str, fiat: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "wallet_id": wallet,
        "timestamp": iso(T0 + timedelta(minutes=minutes)),
        "balance": balance,
        "fiat_value": fiat,
        **extra,
    }


async def test_every_balance_subject_agrees_with_python_over_the_same_rows(client: Client, make: Factory) -> None:
    eth = await make.create("wallets")
    eth2 = await make.create("wallets", status="frozen")
    btc = await make.create("wallets", blockchain_symbol="AVAX")
    empty = await make.create("wallets", blockchain_symbol="MATIC")
    wallets = [eth, eth2, btc, empty]
    tie = "00000000-0000-4000-8000-00000000000"
    items = [
        item(eth["id"], 0, "1.000000000000000001", "10.5"),
        item(eth["id"], 200, "12345678901234567890.123456789012345678", "99999999999999999999.12345678"),
        item(eth["id"], 30, "0.5", None),  # out of order: older than the one before
        item(eth["id"], 60 * 26, "7", "70", id=tie + "2"),  # two rows at one instant: the larger id is newer
        item(eth["id"], 60 * 26, "8", "80", id=tie + "1"),
        item(eth2["id"], 60 * 24 * 8, "0", "0"),  # a week later: carried forward before it, first = 0 after
        item(eth2["id"], 60 * 24 * 8 + 5, "3", "3"),
        item(btc["id"], -60 * 24 * 2, "2.25", "100"),  # before the reports' ranges: carried in
    ]
    reply = await client.ok("ekko.wallet_balances.ingest", {"items": items})
    assert reply["count"] == len(items) and len(reply["ids"]) == len(items)
    rows = [await client.ok("ekko.wallet_balances.get", {"id": i}) for i in reply["ids"]]
    assert rows[1]["balance"] == "12345678901234567890.123456789012345678"  # 18 decimals, 20 digits, exact
    await check_every_answer(client, rows, wallets)

    # One more through create, an old row moved in time, the newest row deleted: all follow.
    rows.append(await client.ok("ekko.wallet_balances.create", item(btc["id"], 90, "5.000000000000000005", "6")))
    moved = await client.ok(
        "ekko.wallet_balances.update", {"id": rows[2]["id"], "timestamp": iso(T0 + timedelta(days=3))}
    )
    rows[2] = moved
    await client.ok("ekko.wallet_balances.delete", {"id": rows[1]["id"]})
    del rows[1]
    await check_every_answer(client, rows, wallets)

    # A wallet moved to another chain takes its portfolio value along; a deleted one (its rows
    # cascade) takes it away.
    wallets[2] = await client.ok("ekko.wallets.update", {"id": btc["id"], "blockchain_symbol": "ETH"})
    await check_every_answer(client, rows, wallets)
    await client.ok("ekko.wallets.delete", {"id": eth2["id"], "cascade": True})
    rows = [r for r in rows if r["wallet_id"] != eth2["id"]]
    wallets.remove(eth2)
    await check_every_answer(client, rows, wallets)


async def test_concurrent_writes_of_one_wallet_in_group_commits_keep_the_derived_state(
    client: Client, make: Factory
) -> None:
    wallet = await make.create("wallets")
    bodies = [item(wallet["id"], (n * 37) % 200, f"{n}.{n:018d}", str(n)) for n in range(60)]
    rows = await asyncio.gather(*(client.ok("ekko.wallet_balances.create", b) for b in bodies))
    await check_every_answer(client, list(rows), [wallet])


async def test_a_wallets_balance_cannot_be_set_by_hand_once_it_has_rows(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    await client.ok("ekko.wallets.update", {"id": wallet["id"], "balance": "3"})  # no rows yet: allowed
    await client.ok("ekko.wallet_balances.create", {"wallet_id": wallet["id"], "balance": "4"})
    assert_rejected(await client.request("ekko.wallets.update", {"id": wallet["id"], "balance": "5"}), 409, "balance")
    assert (await client.ok("ekko.wallets.get", {"id": wallet["id"]}))["balance"] == "4.000000000000000000"
    await client.ok("ekko.wallets.update", {"id": wallet["id"], "name": "renamed"})  # other fields still change


async def test_ingest_is_all_or_nothing_and_names_the_item(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    good = item(wallet["id"], 0, "1")
    cases = [
        ([good, good, item(wallet["id"], 1, "1.0000000000000000001")], 400, "items[2].balance"),
        ([good, item(wallet["id"], 1, "NaN")], 400, "items[1].balance"),
        ([good, item("7a0f7d3c-0000-4000-8000-000000000000", 1, "1")], 404, "items[1].wallet_id"),
        ([good, {**good, "colour": "red"}], 400, "items[1].colour"),
        ([good, item(wallet["id"], 1, "100000000000000000000")], 400, "items[1].balance"),
        ([], 400, "items"),
    ]
    for items, status, field in cases:
        assert_rejected(await client.request("ekko.wallet_balances.ingest", {"items": items}), status, field)
    assert (await client.ok("ekko.wallet_balances.latest", {}))["items"] == []
    assert (await client.ok("ekko.wallet_balances.list", {}))["items"] == []


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        (
            "ekko.wallet_balances.history",
            {"wallet_id": "7a0f7d3c-0000-4000-8000-000000000000", "interval": "2h"},
            "interval",
        ),
        ("ekko.wallet_balances.history", {"interval": "1h"}, "wallet_id"),
        (
            "ekko.wallet_balances.performance",
            {
                "wallet_id": "7a0f7d3c-0000-4000-8000-000000000000",
                "from": "2026-01-02T00:00:00Z",
                "to": "2026-01-01T00:00:00Z",
            },
            "to",
        ),
        ("ekko.wallet_balances.at", {"wallet_id": "7a0f7d3c-0000-4000-8000-000000000000"}, "at"),
        ("ekko.wallet_balances.latest", {"wallet_ids": ["nope"]}, "wallet_ids[0]"),
        (
            "ekko.reports.portfolio_history",
            {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "interval": "1h"},
            "from",
        ),
        ("ekko.reports.portfolio_history", {"to": "2026-01-01T00:00:00Z", "interval": "1d"}, "from"),
        ("ekko.reports.wallet_stats", {"x": 1}, "x"),
    ],
)
async def test_bad_arguments_are_a_400_naming_the_field(client: Client, subject: str, body: Any, field: str) -> None:
    assert_rejected(await client.request(subject, body), 400, field)


async def test_empty_ranges_and_wallets_without_rows(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    wid = wallet["id"]
    assert (await client.ok("ekko.wallet_balances.history", {"wallet_id": wid, "interval": "1d"}))["points"] == []
    perf = await client.ok("ekko.wallet_balances.performance", {"wallet_id": wid})
    assert perf["count"] == 0 and perf["first"] is None
    assert_rejected(await client.request("ekko.wallet_balances.at", {"wallet_id": wid, "at": iso(T0)}), 404)
    body = {"from": iso(T0), "to": iso(T0 + timedelta(days=2)), "interval": "1d"}
    points = (await client.ok("ekko.reports.portfolio_history", body))["points"]
    assert [Decimal(p["fiat_value"]) for p in points] == [0, 0, 0]  # from is aligned down to its day
    stats = await client.ok("ekko.reports.wallet_stats", {})
    assert stats["by_chain"] == [
        {"blockchain_symbol": "ETH", "wallets": 1, "balance": "0.000000000000000000", "fiat_value": "0.00000000"}
    ]


@pytest.mark.parametrize(
    "subject",
    [
        "ekko.wallet_balances.ingest",
        "ekko.wallet_balances.latest",
        "ekko.reports.wallet_stats",
        "ekko.reports.portfolio_history",
    ],
)
async def test_a_caller_without_rights_gets_no_answer(reader: Client, subject: str) -> None:
    with pytest.raises(Exception) as caught:
        await reader.request(subject, {}, timeout=1.0)
    assert (
        "ermission" in str(caught.value)
        or "responders" in type(caught.value).__name__.lower()
        or "Timeout" in type(caught.value).__name__
    )


async def test_wallet_stats_sums_exactly_past_what_one_column_holds(client: Client, make: Factory) -> None:
    """Two balances just under 10^20 sum past DECIMAL(38,18): the sum is still exact."""
    wallets = [await make.create("wallets") for _ in range(2)]
    top = "99999999999999999999.999999999999999999"
    items = [{"wallet_id": w["id"], "balance": top, "fiat_value": "9" * 29 + ".99999999"} for w in wallets]
    await client.ok("ekko.wallet_balances.ingest", {"items": items})
    stats = await client.ok("ekko.reports.wallet_stats", {})
    assert stats["by_chain"] == [
        {
            "blockchain_symbol": "ETH",
            "wallets": 2,
            "balance": "199999999999999999999.999999999999999998",
            "fiat_value": "1" + "9" * 29 + ".99999998",
        }
    ]
