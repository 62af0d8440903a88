"""The typed client's balance calls against the real service: ingest, latest, at, history,
performance and the two balance reports each return their reply Struct holding what the
same request sent raw replies; error replies raise their class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ekko_client import EkkoClient, InvalidRequest, NotFound
from ekko_client.schema.balances import (
    HistoryReply,
    IngestReply,
    LatestReply,
    PerformanceReply,
    PortfolioReply,
    WalletStatsReply,
)
from ekko_client.schema.wallet_balances import WalletBalance, WalletBalanceCreate
from tests.client import Client, as_sent
from tests.factories import Factory

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: weeks start there


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def ingested(typed: EkkoClient, make: Factory) -> tuple[list[str], IngestReply]:
    """Two wallets; the first with three rows over two days, the second with one."""
    wallets = [(await make.create("wallets", blockchain_symbol=chain))["id"] for chain in ("ETH", "AVAX")]
    items = [
        WalletBalanceCreate(wallet_id=wallets[0], timestamp=T0, balance=Decimal("1.5"), fiat_value=Decimal("3")),
        WalletBalanceCreate(wallet_id=wallets[0], timestamp=T0 + timedelta(hours=5), balance=Decimal("4")),
        WalletBalanceCreate(
            wallet_id=wallets[0], timestamp=T0 + timedelta(days=1), balance=Decimal("2"), fiat_value=Decimal("8")
        ),
        WalletBalanceCreate(wallet_id=wallets[1], timestamp=T0, balance=Decimal("10"), fiat_value=Decimal("20")),
    ]
    return wallets, await typed.wallet_balances.ingest(items)


async def test_ingest_returns_the_ids_of_rows_that_read_back(
    typed: EkkoClient, ingested: tuple[list[str], IngestReply]
) -> None:
    wallets, reply = ingested
    assert isinstance(reply, IngestReply) and reply.count == len(reply.ids) == 4
    rows = [await typed.wallet_balances.get(i) for i in reply.ids]
    assert [(r.wallet_id, r.balance) for r in rows] == [
        (wallets[0], Decimal("1.5")),
        (wallets[0], Decimal("4")),
        (wallets[0], Decimal("2")),
        (wallets[1], Decimal("10")),
    ]


async def test_latest_and_at_agree_with_the_raw_replies(
    typed: EkkoClient, client: Client, ingested: tuple[list[str], IngestReply]
) -> None:
    wallets, reply = ingested
    everything = await typed.wallet_balances.latest()
    assert isinstance(everything, LatestReply)
    assert as_sent(everything) == await client.ok("ekko.wallet_balances.latest", {})
    assert {(b.wallet_id, b.balance) for b in everything.items} == {(wallets[0], 2), (wallets[1], 10)}
    one = await typed.wallet_balances.latest([wallets[1]])
    assert as_sent(one) == await client.ok("ekko.wallet_balances.latest", {"wallet_ids": [wallets[1]]})
    assert [b.id for b in one.items] == [reply.ids[3]]

    moment = T0 + timedelta(hours=6)
    at = await typed.wallet_balances.at(wallets[0], moment)
    assert isinstance(at, WalletBalance) and at.id == reply.ids[1]
    raw = await client.ok("ekko.wallet_balances.at", {"wallet_id": wallets[0], "at": iso(moment)})
    assert as_sent(at) == raw
    with pytest.raises(NotFound):
        await typed.wallet_balances.at(wallets[0], T0 - timedelta(seconds=1))


async def test_history_and_performance_agree_with_the_raw_replies(
    typed: EkkoClient, client: Client, ingested: tuple[list[str], IngestReply]
) -> None:
    wallet = ingested[0][0]
    daily = await typed.wallet_balances.history(wallet, "1d")
    assert isinstance(daily, HistoryReply)
    assert as_sent(daily) == await client.ok("ekko.wallet_balances.history", {"wallet_id": wallet, "interval": "1d"})
    assert [(p.start, p.first, p.last, p.max, p.count) for p in daily.points] == [
        (T0, Decimal("1.5"), Decimal("4"), Decimal("4"), 2),
        (T0 + timedelta(days=1), Decimal("2"), Decimal("2"), Decimal("2"), 1),
    ]
    hourly = await typed.wallet_balances.history(wallet, "1h", from_=T0 + timedelta(hours=1), to=T0 + timedelta(days=2))
    body = {
        "wallet_id": wallet,
        "interval": "1h",
        "from": iso(T0 + timedelta(hours=1)),
        "to": iso(T0 + timedelta(days=2)),
    }
    assert as_sent(hourly) == await client.ok("ekko.wallet_balances.history", body)
    assert [p.count for p in hourly.points] == [1, 1]

    perf = await typed.wallet_balances.performance(wallet, to=T0 + timedelta(days=1))
    assert isinstance(perf, PerformanceReply)
    raw = await client.ok("ekko.wallet_balances.performance", {"wallet_id": wallet, "to": iso(T0 + timedelta(days=1))})
    assert as_sent(perf) == raw
    assert (perf.first, perf.last, perf.change, perf.change_pct, perf.count) == (
        Decimal("1.5"),
        Decimal("4"),
        Decimal("2.5"),
        Decimal("166.66666667"),
        2,
    )
    with pytest.raises(InvalidRequest) as bad:
        await typed.wallet_balances.history(wallet, "2h")  # type: ignore[arg-type]
    assert bad.value.fields == ["interval"]


async def test_the_balance_reports_agree_with_the_raw_replies(
    typed: EkkoClient, client: Client, ingested: tuple[list[str], IngestReply]
) -> None:
    stats = await typed.reports.wallet_stats()
    assert isinstance(stats, WalletStatsReply)
    assert as_sent(stats) == await client.ok("ekko.reports.wallet_stats", {})
    assert {(c.blockchain_symbol, c.balance) for c in stats.by_chain} == {("ETH", 2), ("AVAX", 10)}

    start, end = T0, T0 + timedelta(days=2)
    portfolio = await typed.reports.portfolio_history(start, end, "1d")
    assert isinstance(portfolio, PortfolioReply)
    body: dict[str, Any] = {"from": iso(start), "to": iso(end), "interval": "1d"}
    assert as_sent(portfolio) == await client.ok("ekko.reports.portfolio_history", body)
    eth = await typed.reports.portfolio_history(start, end, "1d", blockchain_symbol="ETH")
    assert as_sent(eth) == await client.ok("ekko.reports.portfolio_history", {**body, "blockchain_symbol": "ETH"})
    with pytest.raises(InvalidRequest) as backwards:
        await typed.reports.portfolio_history(end, start, "1d")
    assert backwards.value.status == 400


async def test_ingest_of_a_missing_wallet_raises_not_found_and_stores_nothing(typed: EkkoClient, make: Factory) -> None:
    wallet = (await make.create("wallets"))["id"]
    items = [
        WalletBalanceCreate(wallet_id=wallet, balance=Decimal("1")),
        WalletBalanceCreate(wallet_id="00000000-0000-4000-8000-000000000000", balance=Decimal("1")),
    ]
    with pytest.raises(NotFound) as missing:
        await typed.wallet_balances.ingest(items)
    assert missing.value.fields == ["items[1].wallet_id"]
    assert (await typed.wallet_balances.latest()).items == []
