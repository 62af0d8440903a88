"""`ekko.wallet_balances.*` beyond CRUD: batch ingest and the balance questions, one line each
over the entity's request path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from msgspec import UNSET, Struct, UnsetType

from .calls import decoder
from .entities import Entity
from .schema.balances import (
    AtRequest,
    HistoryReply,
    HistoryRequest,
    IngestReply,
    IngestRequest,
    Interval,
    LatestReply,
    LatestRequest,
    PerformanceReply,
    PerformanceRequest,
)
from .schema.wallet_balances import WalletBalance, WalletBalanceCreate

S = TypeVar("S")


class WalletBalances(Entity[WalletBalance, WalletBalanceCreate]):
    """The wallet_balances entity, plus `ingest`, `latest`, `at`, `history`, `performance`.
    Time bounds left out (UNSET) are open."""

    async def _query(self, action: str, request: Struct, reply: type[S], *, idempotent: bool = True) -> S:
        return decoder(reply).decode(await self._ask(action, request, idempotent=idempotent))

    async def ingest(self, items: Iterable[WalletBalanceCreate]) -> IngestReply:
        """Many rows in one request, all or nothing (a bad item raises, naming `items[i]`);
        `ids` in the order of `items`. Not retried after a timeout: it may have been applied."""
        return await self._query("ingest", IngestRequest(list(items)), IngestReply, idempotent=False)

    async def latest(self, wallet_ids: Iterable[str] | None = None) -> LatestReply:
        """The newest row of each wallet (of every wallet with rows when `wallet_ids` is None)."""
        request = LatestRequest() if wallet_ids is None else LatestRequest(list(wallet_ids))
        return await self._query("latest", request, LatestReply)

    async def at(self, wallet_id: str, at: datetime) -> WalletBalance:
        """The row in effect at `at` (the newest with `timestamp <= at`); raises NotFound when none."""
        return await self._query("at", AtRequest(wallet_id, at), WalletBalance)

    async def history(
        self,
        wallet_id: str,
        interval: Interval,
        *,
        from_: datetime | UnsetType = UNSET,
        to: datetime | UnsetType = UNSET,
    ) -> HistoryReply:
        """First, last, min, max and count per UTC interval ("1h", "1d", "1w") with rows."""
        request = HistoryRequest(wallet_id, interval, from_=from_, to=to)
        return await self._query("history", request, HistoryReply)

    async def performance(
        self, wallet_id: str, *, from_: datetime | UnsetType = UNSET, to: datetime | UnsetType = UNSET
    ) -> PerformanceReply:
        """First, last, min, max, avg, change and change_pct over rows in [from_, to)."""
        request = PerformanceRequest(wallet_id, from_=from_, to=to)
        return await self._query("performance", request, PerformanceReply)
