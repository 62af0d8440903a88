"""Typed calls of the subjects that are not entity CRUD: reports and search (and, on the
same pattern, any question with its own request and reply Struct). Each call is one line:
build the request Struct, name the reply Struct; `Calls.call` does the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from msgspec import Struct

from .schema.balances import Interval, PortfolioReply, PortfolioRequest, WalletStatsReply, WalletStatsRequest
from .schema.reports import (
    AlertStats,
    AlertStatsRequest,
    WalletOverview,
    WalletOverviewRequest,
)
from .transport import Transport

S = TypeVar("S")


_DECODERS: dict[Any, Any] = {}


def decoder(reply: type[S]) -> msgspec.json.Decoder[S]:
    """One decoder per reply type, built on first use."""
    found: msgspec.json.Decoder[S] | None = _DECODERS.get(reply)
    if found is None:
        found = _DECODERS[reply] = msgspec.json.Decoder(reply)
    return found


class Calls:
    """A group of typed calls over one transport."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def call(self, name: str, request: Struct | None, reply: type[S], *, idempotent: bool = True) -> S:
        """`<prefix>.<name>` with `request`, its reply decoded into `reply`. Reads by default
        (retried after a timeout); a write passes `idempotent=False`."""
        return decoder(reply).decode(await self._transport.request(name, request, idempotent=idempotent))


class Reports(Calls):
    """`ekko.reports.*`: read-only, each reply read in one snapshot of the database."""

    async def alert_stats(self, *, from_: datetime | None = None, to: datetime | None = None) -> AlertStats:
        """Alerts created in [from_, to) (either bound may be left out)."""
        return await self.call("reports.alert_stats", AlertStatsRequest(from_=from_, to=to), AlertStats)

    async def wallet_overview(self, wallet_id: str) -> WalletOverview:
        """The wallet with its latest balance, changes, alert counts, rules and workflows;
        raises NotFound for an unknown wallet."""
        return await self.call("reports.wallet_overview", WalletOverviewRequest(wallet_id), WalletOverview)

    async def wallet_stats(self) -> WalletStatsReply:
        """Wallets by status and by chain, balances summed over each wallet's newest row."""
        return await self.call("reports.wallet_stats", WalletStatsRequest(), WalletStatsReply)

    async def portfolio_history(
        self, from_: datetime, to: datetime, interval: Interval, *, blockchain_symbol: str | None = None
    ) -> PortfolioReply:
        """Fiat value over wallets at each interval's end, carried forward (one chain, or all)."""
        request = PortfolioRequest(from_=from_, to=to, interval=interval)
        if blockchain_symbol is not None:
            request.blockchain_symbol = blockchain_symbol
        return await self.call("reports.portfolio_history", request, PortfolioReply)


__all__ = ["Calls", "Reports", "decoder"]
