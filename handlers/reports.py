"""`ekko.reports.alert_stats`, `ekko.reports.wallet_overview` and `ekko.search`: read-only."""

from __future__ import annotations

from faststream.nats import NatsRouter

from handlers.crud import subscribe
from handlers.stats import Endpoints
from schema.common import encode
from schema.reports import (
    AlertStats,
    AlertStatsRequest,
    SearchReply,
    SearchRequest,
    WalletOverview,
    WalletOverviewRequest,
)
from service.usecases.reports import ReportService


def reports_router(
    reports: ReportService, *, prefix: str, workers: int, queue: str, endpoints: Endpoints
) -> NatsRouter:
    router = NatsRouter(prefix=f"{prefix}.")
    listed = endpoints.prefixed(f"{prefix}.")

    async def alert_stats(body: AlertStatsRequest) -> bytes:
        return encode(await reports.alert_stats(body))

    async def wallet_overview(body: WalletOverviewRequest) -> bytes:
        return encode(await reports.wallet_overview(body))

    async def search(body: SearchRequest) -> bytes:
        return encode(await reports.search(body))

    for subject, request, handler, reply in (
        ("reports.alert_stats", AlertStatsRequest, alert_stats, AlertStats),
        ("reports.wallet_overview", WalletOverviewRequest, wallet_overview, WalletOverview),
        ("search", SearchRequest, search, SearchReply),
    ):
        subscribe(
            router, subject, request, handler, workers=workers, queue=queue, endpoints=listed, reply=reply.__name__
        )
    return router
