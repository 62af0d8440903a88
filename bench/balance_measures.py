"""The balance part of the report benchmark: what to ask, and the KV way to compare with.

Interface (bench.report_bench wires it in):

    MEASURES: tuple[Measure, ...]   # wallet_stats, portfolio_history (30 days, 1d),
                                    # history (one wallet, one year, 1d)
    Measure.name      label for the table
    Measure.subject   the NATS subject to request
    Measure.request(data: Dataset) -> dict
                      the JSON body, built from the dataset's wallet ids and time range
    Measure.kv_way(js: JetStreamContext, data: Dataset) -> Awaitable[object]
                      the KV way, timed as one run: read every key of the legacy buckets
                      it needs (service.sync.buckets.read_bucket) and compute the same answer
                      in plain Python; returns that answer (a JSON-like dict shaped like the
                      subject's reply, decimals as Decimal), so a run can also compare it with
                      the reply (`same_answer`).
    Dataset(wallet_ids, start, end)
                      the wallets the dataset made and the span its balance rows cover
                      (aware UTC); history asks for wallet_ids[0] over the last 365 days
                      before `end`, portfolio_history for the last 30 days.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import msgspec
from nats.js import JetStreamContext

from service.sync.buckets import read_bucket

EXACT = Context(prec=80)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Dataset:
    wallet_ids: Sequence[str]
    start: datetime  # the oldest balance row's time (aware UTC)
    end: datetime  # just after the newest one


@dataclass(frozen=True)
class Measure:
    name: str
    subject: str
    request: Callable[[Dataset], dict[str, Any]]
    kv_way: Callable[[JetStreamContext, Dataset], Awaitable[object]]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day_of(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def records(js: JetStreamContext, bucket: str) -> list[dict[str, Any]]:
    snapshot = await read_bucket(js, bucket)
    return [msgspec.json.decode(value) for value in snapshot.values.values()]


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (parse(r["timestamp"]), r["id"]), reverse=True)


# -- wallet_stats --------------------------------------------------------------------
async def wallet_stats_kv(js: JetStreamContext, data: Dataset) -> object:
    wallets = await records(js, "wallets")
    latest: dict[str, dict[str, Any]] = {}
    for row in newest_first(await records(js, "wallet_balances")):
        latest.setdefault(row["wallet_id"], row)
    by_status: dict[str, int] = {}
    chains: dict[str, list[Any]] = {}
    for wallet in wallets:
        by_status[wallet["status"]] = by_status.get(wallet["status"], 0) + 1
        entry = chains.setdefault(wallet["blockchain_symbol"], [0, Decimal(0), Decimal(0)])
        entry[0] += 1
        newest = latest.get(wallet["id"])
        if newest is not None:
            entry[1] = EXACT.add(entry[1], Decimal(newest["balance"]))
            entry[2] = EXACT.add(entry[2], Decimal(newest["fiat_value"] or 0))
    return {
        "total": len(wallets),
        "by_status": by_status,
        "by_chain": [
            {"blockchain_symbol": c, "wallets": n, "balance": b, "fiat_value": f}
            for c, (n, b, f) in sorted(chains.items())
        ],
    }


# -- portfolio_history (30 days, 1d) ----------------------------------------------------
def portfolio_range(data: Dataset) -> tuple[datetime, datetime]:
    end = day_of(data.end) + DAY
    return end - 30 * DAY, end


async def portfolio_kv(js: JetStreamContext, data: Dataset) -> object:
    start, end = portfolio_range(data)
    per_wallet: dict[str, list[tuple[datetime, str, Decimal]]] = {}
    for row in await records(js, "wallet_balances"):
        at = parse(row["timestamp"])
        per_wallet.setdefault(row["wallet_id"], []).append((at, row["id"], Decimal(row["fiat_value"] or 0)))
    points = []
    day = start
    while day < end:
        total = Decimal(0)
        for rows in per_wallet.values():
            before = [r for r in rows if r[0] < day + DAY]
            if before:
                total = EXACT.add(total, max(before)[2])
        points.append({"start": day, "fiat_value": total})
        day += DAY
    return {"points": points}


# -- history (one wallet, one year, 1d) -------------------------------------------------
def history_range(data: Dataset) -> tuple[datetime, datetime]:
    return data.end - 365 * DAY, data.end


async def history_kv(js: JetStreamContext, data: Dataset) -> object:
    start, end = history_range(data)
    wallet = data.wallet_ids[0]
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for row in sorted(await records(js, "wallet_balances"), key=lambda r: (parse(r["timestamp"]), r["id"])):
        at = parse(row["timestamp"])
        if row["wallet_id"] == wallet and day_of(start) <= day_of(at) < end:
            groups.setdefault(day_of(at), []).append(row)
    points = []
    for day, rows in sorted(groups.items()):
        amounts = [Decimal(r["balance"]) for r in rows]
        fiat = rows[-1]["fiat_value"]
        points.append(
            {
                "start": day,
                "first": amounts[0],
                "last": amounts[-1],
                "min": min(amounts),
                "max": max(amounts),
                "count": len(rows),
                "last_fiat_value": None if fiat is None else Decimal(fiat),
            }
        )
    return {"points": points}


MEASURES: tuple[Measure, ...] = (
    Measure("wallet_stats", "ekko.reports.wallet_stats", lambda data: {}, wallet_stats_kv),
    Measure(
        "portfolio_history (30 days, 1d)",
        "ekko.reports.portfolio_history",
        lambda data: {"from": iso(portfolio_range(data)[0]), "to": iso(portfolio_range(data)[1]), "interval": "1d"},
        portfolio_kv,
    ),
    Measure(
        "history (one wallet, one year, 1d)",
        "ekko.wallet_balances.history",
        lambda data: {
            "wallet_id": data.wallet_ids[0],
            "interval": "1d",
            "from": iso(history_range(data)[0]),
            "to": iso(history_range(data)[1]),
        },
        history_kv,
    ),
)


def same_answer(reply: Any, kv_answer: Any) -> bool:
    """The reply (decoded JSON) equals the KV way's answer: strings that are numbers or
    times are compared as Decimal or datetime."""
    if isinstance(kv_answer, dict):
        return (
            isinstance(reply, dict)
            and reply.keys() == kv_answer.keys()
            and all(same_answer(reply[k], v) for k, v in kv_answer.items())
        )
    if isinstance(kv_answer, list):
        return isinstance(reply, list) and len(reply) == len(kv_answer) and all(map(same_answer, reply, kv_answer))
    if isinstance(kv_answer, Decimal):
        return reply is not None and Decimal(reply) == kv_answer
    if isinstance(kv_answer, datetime):
        return reply is not None and parse(reply) == kv_answer
    return bool(reply == kv_answer)
