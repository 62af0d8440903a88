"""The balance part of the report benchmark: what to ask, and the KV way to compare with.

Interface (what bench.report_bench uses; the types are bench.measures'):

    MEASURES: list of Measure(name, subject, body, kv_way):
        wallet_stats, portfolio_history (30 days, 1d), history (one wallet, one year, 1d)
    Measure.body(ds, i) -> dict
        the i-th request's JSON body, from the dataset's wallets (ds.wallet_id(i)) and its
        time range (the year before ds.now, naive UTC)
    Measure.kv_way(kv, ds, body) -> Awaitable[answer]
        the KV way: read every key of the legacy buckets it needs (kv.bucket(name): every
        value decoded) and compute the answer to `body` in plain Python; the answer is shaped
        like the reply (decimals as Decimal, times as aware datetimes), so `same_answer(reply,
        answer)` can check the service against it
    prepare(cursor, ds)
        called after the raw fill: derives the balance roll-ups and latest rows from the rows
        the fill inserted (service.store.balances.rebuild), as a migration does

"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

from bench.measures import Dataset, KvReader, Measure
from service.store.balances import rebuild
from service.store.sql import Cursor

EXACT = Context(prec=80)
DAY = timedelta(days=1)


def prepare(cur: Cursor, ds: Any) -> None:
    rebuild(cur)


def end_of(ds: Dataset) -> datetime:
    return ds.now.replace(tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day_of(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def parse(at: str) -> datetime:
    """A time from a request or a KV value (the legacy format writes them without offset: UTC)."""
    parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (parse(r["timestamp"]), r["id"]), reverse=True)


# -- wallet_stats --------------------------------------------------------------------
async def wallet_stats_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> object:
    wallets = await kv.bucket("wallets")
    latest: dict[str, dict[str, Any]] = {}
    for row in newest_first(await kv.bucket("wallet_balances")):
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
def portfolio_body(ds: Dataset, i: int) -> dict[str, Any]:
    end = day_of(end_of(ds)) + DAY
    return {"from": iso(end - 30 * DAY), "to": iso(end), "interval": "1d"}


async def portfolio_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> object:
    start, end = day_of(parse(body["from"])), parse(body["to"])
    per_wallet: dict[str, list[tuple[datetime, str, Decimal]]] = {}
    for row in await kv.bucket("wallet_balances"):
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
def history_body(ds: Dataset, i: int) -> dict[str, Any]:
    end = end_of(ds)
    return {"wallet_id": ds.wallet_id(i), "interval": "1d", "from": iso(end - 365 * DAY), "to": iso(end)}


async def history_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> object:
    start, end = parse(body["from"]), parse(body["to"])
    wallet = body["wallet_id"]
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for row in sorted(await kv.bucket("wallet_balances"), key=lambda r: (parse(r["timestamp"]), r["id"])):
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


MEASURES: list[Measure] = [
    Measure("wallet_stats", "ekko.reports.wallet_stats", lambda ds, i: {}, wallet_stats_kv),
    Measure("portfolio_history (30 days, 1d)", "ekko.reports.portfolio_history", portfolio_body, portfolio_kv),
    Measure("history (one wallet, one year, 1d)", "ekko.wallet_balances.history", history_body, history_kv),
]


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
