"""`ekko.reports.alert_stats`, `ekko.reports.wallet_overview` and `ekko.search`: read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import NatsRouter

from handlers.crud import Serving, subscribe
from schema import reports as shapes
from schema.common import encode
from service.usecases.reports import ReportService


def _replying(answer: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[bytes]]:
    async def handle(body: Any) -> bytes:
        return encode(await answer(body))

    return handle


def reports_router(reports: ReportService, serving: Serving) -> NatsRouter:
    router, listed = serving.router()
    for subject, request, answer, reply in (
        ("reports.alert_stats", shapes.AlertStatsRequest, reports.alert_stats, shapes.AlertStats),
        ("reports.wallet_overview", shapes.WalletOverviewRequest, reports.wallet_overview, shapes.WalletOverview),
        ("search", shapes.SearchRequest, reports.search, shapes.SearchReply),
    ):
        handler = _replying(answer)
        subscribe(
            router,
            subject,
            request,
            handler,
            workers=serving.workers,
            queue=serving.queue,
            buffer=serving.buffer,
            endpoints=listed,
            reply=reply,
        )
    return router
