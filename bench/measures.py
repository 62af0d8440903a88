"""What the report benchmark measures: a table of `Measure`s, each a subject, the body of its
i-th request, and "the KV way" of answering the same question (read every key of the legacy
buckets it needs, compute in Python).

Other modules add rows: `bench.report_bench` appends `MEASURES` of `bench.balance_measures`
when that module exists (and calls its `prepare(cursor, dataset)`, if it has one, after the
raw fill, e.g. to fill derived tables). A subject not served on this branch is shown as
"not available" rather than failing the run.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from nats.js import JetStreamContext

from service.model.search import SEARCHABLE
from service.sync.buckets import read_bucket

CHAINS = ("ETH", "AVAX", "MATIC", "ARB")
ALERT_TYPES = ("price", "volume", "balance", "whale", "gas")
ALERT_STATUSES = ("active", "resolved", "muted")
PRIORITIES = ("low", "medium", "high")
KINDS = {"users": 1, "wallets": 2, "alerts": 3, "wallet_balances": 4, "alert_rules": 5, "workflows": 6, "agents": 8}


@dataclass(frozen=True)
class Dataset:
    """Sizes and the instant the data was built around (timestamps go back from `now`, UTC).

    What bench.report_bench.fill makes: wallet i is `uid("wallets", i)`, chain CHAINS[i % 4];
    balance row k belongs to wallet k % wallets, each wallet's balances // wallets rows spread
    evenly over the year before `now` (token_price 2.5, fiat_value = balance * 2.5); alert j
    is created j * (30 days / alerts) before `now`, for wallet j * 7 % wallets (none when
    j % 10 == 0), status ALERT_STATUSES[j % 3]."""

    wallets: int
    balances: int
    alerts: int
    others: int  # users, alert rules, workflows and agents, each
    now: datetime  # naive UTC, as stored

    @staticmethod
    def uid(entity: str, n: int) -> str:
        return f"{KINDS[entity]:08x}-0000-4000-8000-{n:012x}"

    def wallet_id(self, i: int) -> str:
        return self.uid("wallets", i % self.wallets)


class KvReader:
    """The legacy buckets, read the KV way: every key of a bucket, each value decoded."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def bucket(self, name: str) -> list[dict[str, Any]]:
        snapshot = await read_bucket(self.js, name)
        return [_decode(value) for value in snapshot.values.values()]


_decode = msgspec.json.Decoder(dict[str, Any]).decode
Body = Callable[[Dataset, int], dict[str, Any]]
KvWay = Callable[[KvReader, Dataset, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Measure:
    name: str
    subject: str
    body: Body  # the i-th request's body
    kv_way: KvWay | None = None  # answers body(dataset, 0) from the buckets


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- alert_stats ---------------------------------------------------------------------------


async def alert_stats_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> Any:
    alerts, wallets = await kv.bucket("alerts"), {w["id"]: w for w in await kv.bucket("wallets")}
    day_ago = ds.now - timedelta(days=1)
    per_wallet = Counter(a["related_wallet_id"] for a in alerts if a["related_wallet_id"])
    top = heapq.nsmallest(10, per_wallet.items(), key=lambda item: (-item[1], item[0]))
    return {
        "total": len(alerts),
        "by_status": Counter(a["status"] for a in alerts),
        "by_type": Counter(a["type"] for a in alerts),
        "by_priority": Counter(a["priority"] for a in alerts),
        "last_24h": sum(_time(a["created_at"]) >= day_ago for a in alerts),
        "top_wallets": [(w, wallets[w]["name"], wallets[w]["blockchain_symbol"], n) for w, n in top],
    }


# -- wallet_overview -------------------------------------------------------------------------


def _in_effect(rows: list[dict[str, Any]], at: datetime | None) -> dict[str, Any] | None:
    chosen = [r for r in rows if at is None or _time(r["timestamp"]) <= at]
    return max(chosen, key=lambda r: (_time(r["timestamp"]), r["id"]), default=None)


async def wallet_overview_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> Any:
    wallet_id = body["wallet_id"]
    wallet = next(w for w in await kv.bucket("wallets") if w["id"] == wallet_id)
    rows = [r for r in await kv.bucket("wallet_balances") if r["wallet_id"] == wallet_id]
    latest = _in_effect(rows, None)
    changes = []
    for ago in (timedelta(days=1), timedelta(days=7)):
        before = _in_effect(rows, ds.now - ago)
        changes.append(None if latest is None or before is None else latest["balance"] - before["balance"])
    statuses = Counter(a["status"] for a in await kv.bucket("alerts") if a["related_wallet_id"] == wallet_id)
    rules = [
        r
        for r in await kv.bucket("alert_rules")
        if wallet_id in (msgspec.json.encode(r["condition"]) + msgspec.json.encode(r["action"])).decode().lower()
    ]
    flows = [
        f
        for f in await kv.bucket("workflows")
        if any(wallet_id in msgspec.json.encode(s.get("config", {})).decode().lower() for s in f["steps"])
    ]
    return wallet, latest, changes, statuses, rules, flows


# -- search ------------------------------------------------------------------------------


def _score(value: str | None, q: str) -> int:
    if value is None:
        return 0
    value = value.lower()
    return 3 if value == q else 2 if value.startswith(q) else 1 if q in value else 0


async def search_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> Any:
    q, hits = body["q"].lower(), []
    for rank, item in enumerate(SEARCHABLE):  # the fields ekko searches, read the KV way
        for row in await kv.bucket(item.entity):
            if best := max(_score(row.get(f), q) for f in item.fields):
                name = next(row[f] for f in item.title if row.get(f) is not None)
                hits.append((-best, rank, name.lower(), row["id"], item.entity, name))
    return heapq.nsmallest(body.get("limit", 20), hits)


# -- alerts.list with include and count --------------------------------------------------------


async def alerts_page_kv(kv: KvReader, ds: Dataset, body: dict[str, Any]) -> Any:
    wallets = {w["id"]: w for w in await kv.bucket("wallets")}
    status = body["filters"]["status"]
    matching = [a for a in await kv.bucket("alerts") if a["status"] == status]
    page = heapq.nsmallest(body["limit"], matching, key=lambda a: a["id"])
    return len(matching), [{**a, "wallet": wallets.get(a["related_wallet_id"])} for a in page]


MEASURES: list[Measure] = [
    Measure("alert_stats", "ekko.reports.alert_stats", lambda ds, i: {}, alert_stats_kv),
    Measure(
        "wallet_overview",
        "ekko.reports.wallet_overview",
        lambda ds, i: {"wallet_id": ds.wallet_id(i * 7919 + 1)},
        wallet_overview_kv,
    ),
    Measure("search", "ekko.search", lambda ds, i: {"q": f"wallet {(i * 37 + 5) % ds.wallets}"}, search_kv),
    Measure(
        "alerts.list status+include+count",
        "ekko.alerts.list",
        # The status varies, so no request repeats the one before (the KV way answers "active").
        lambda ds, i: {
            "filters": {"status": ALERT_STATUSES[i % 3]},
            "include": ["wallet"],
            "count": True,
            "limit": 50,
        },
        alerts_page_kv,
    ),
]
