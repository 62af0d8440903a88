"""`ekko.wallet_balances.{ingest,latest,at,history,performance}` and the balance reports
`ekko.reports.{wallet_stats,portfolio_history}`: decode, ask the balance service, encode."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsRouter

from handlers.crud import Serving, subscribe
from schema.balances import SUBJECTS
from schema.common import encode
from service.usecases.balances import BalanceService


def balance_router(service: BalanceService, serving: Serving) -> NatsRouter:
    router, listed = serving.router()

    async def ingest(body: Any) -> bytes:
        return encode(await service.ingest(body))

    async def latest(body: Any) -> bytes:
        return await service.latest(body)

    async def at(body: Any) -> bytes:
        return encode(await service.at(body))

    async def history(body: Any) -> bytes:
        return encode(await service.history(body))

    async def performance(body: Any) -> bytes:
        return encode(await service.performance(body))

    async def wallet_stats(body: Any) -> bytes:
        return encode(await service.wallet_stats())

    async def portfolio_history(body: Any) -> bytes:
        return encode(await service.portfolio_history(body))

    handlers = {
        "wallet_balances.ingest": ingest,
        "wallet_balances.latest": latest,
        "wallet_balances.at": at,
        "wallet_balances.history": history,
        "wallet_balances.performance": performance,
        "reports.wallet_stats": wallet_stats,
        "reports.portfolio_history": portfolio_history,
    }
    # An ingest is a transaction of its own (up to 10,000 rows): it needs no crowd to fill a
    # group, and each one waiting holds its decoded rows, so as few run at once as reads do.
    for subject, (request, reply) in SUBJECTS.items():
        subscribe(
            router,
            subject,
            request,
            handlers[subject],
            workers=serving.workers,
            queue=serving.queue,
            buffer=serving.buffer,
            endpoints=listed,
            reply=reply,
        )
    return router
