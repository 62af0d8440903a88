"""Read-only reports and search: check the request, read one snapshot, shape the reply.

Each reply is read inside one DuckDB read transaction (in_one_snapshot), so its figures
agree even while writes commit. "Now" is taken once per request, before the read.
"""

from __future__ import annotations

import decimal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar, cast

from schema.common import FixedDecimal
from schema.reports import (
    AlertStats,
    AlertStatsRequest,
    SearchReply,
    SearchRequest,
    WalletOverview,
    WalletOverviewRequest,
)
from schema.wallets import Wallet
from service.model.columns import utc_now
from service.model.errors import NotFound, invalid
from service.model.registry import ENTITIES
from service.model.search import SEARCH_TYPES
from service.model.values import canonical_id, to_utc
from service.store import reports as sql
from service.store import search as search_sql
from service.store.database import Cursor, Database, in_one_snapshot
from service.store.repository import Repository
from service.store.timings import QUERY_TIMES

T = TypeVar("T")
MENTIONS_LIMIT = 100  # alert rules and workflows listed per wallet overview
DAY = timedelta(days=1)
# Exact differences of balances with up to 38 digits: the default context rounds to 28.
EXACT = decimal.Context(prec=80)


class ReportService:
    """`ekko.reports.alert_stats`, `ekko.reports.wallet_overview` and `ekko.search`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _read(self, name: str, fn: Callable[[Cursor], T]) -> T:
        started = time.perf_counter()
        try:
            return await self.db.read(in_one_snapshot(fn))
        finally:  # timed like repository queries: ekko.metrics and the slow-query log see them
            QUERY_TIMES.record("reports", name, time.perf_counter() - started)

    async def alert_stats(self, request: AlertStatsRequest) -> AlertStats:
        start = None if request.from_ is None else to_utc("from", request.from_)
        end = None if request.to is None else to_utc("to", request.to)
        if start is not None and end is not None and end < start:
            raise invalid("to", "must not be before from")
        since = utc_now() - DAY
        return await self._read("alert_stats", lambda cur: sql.alert_stats(cur, start, end, since))

    async def wallet_overview(self, request: WalletOverviewRequest) -> WalletOverview:
        wallet_id = canonical_id(request.wallet_id)
        now = utc_now()

        def read(cur: Cursor) -> WalletOverview:
            wallet = cast(Wallet | None, Repository(ENTITIES["wallets"], cur).get(wallet_id))
            if wallet is None:
                raise NotFound(f"wallet {wallet_id} not found")
            latest = sql.balance_in_effect(cur, wallet_id)
            changes = []
            for ago in (DAY, 7 * DAY):
                before = sql.balance_in_effect(cur, wallet_id, now - ago) if latest is not None else None
                changes.append(
                    None
                    if latest is None or before is None
                    else FixedDecimal(EXACT.subtract(latest.balance, before.balance))
                )
            return WalletOverview(
                wallet=wallet,
                latest_balance=latest,
                change_24h=changes[0],
                change_7d=changes[1],
                alerts_by_status=sql.alerts_by_status(cur, wallet_id),
                alert_rules=sql.rules_mentioning(cur, wallet_id, MENTIONS_LIMIT),
                workflows=sql.workflows_mentioning(cur, wallet_id, MENTIONS_LIMIT),
            )

        return await self._read("wallet_overview", read)

    async def search(self, request: SearchRequest) -> SearchReply:
        q = request.q.strip()
        if not q:
            raise invalid("q", "must contain a character other than white space")
        types: list[str] = (
            list(SEARCH_TYPES) if request.types is None else [t for t in SEARCH_TYPES if t in request.types]
        )
        hits = await self._read("search", lambda cur: search_sql.search(cur, q, types, request.limit))
        return SearchReply(hits)
