"""Balances: batch ingest, the balance questions and reports, and the rule that keeps the
derived state (roll-ups, latest row, wallets.balance) in step with wallet_balances inside
every write's transaction (docs/decisions.md, "Balances")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, cast

from schema.balances import (
    AtRequest,
    ChainStats,
    HistoryPoint,
    HistoryReply,
    HistoryRequest,
    IngestReply,
    IngestRequest,
    LatestReply,
    LatestRequest,
    PerformanceReply,
    PerformanceRequest,
    PortfolioPoint,
    PortfolioReply,
    PortfolioRequest,
    WalletStatsReply,
)
from schema.common import UNSET, FixedDecimal, Record, encode
from schema.wallet_balances import WalletBalance
from schema.wallets import Wallet
from service.model.columns import naive_utc, utc_now
from service.model.errors import Conflict, Detail, NotFound, invalid
from service.model.limits import ENVELOPE_RESERVE, PayloadLimit, too_large
from service.model.registry import ENTITIES
from service.model.values import canonical_id, to_utc
from service.store.balance_ingest import BalanceBatch, StagedBalances
from service.store.balances import BalanceStore
from service.store.database import Database, in_one_snapshot
from service.store.intervals import LENGTHS, bucket
from service.store.repository import Repository
from service.store.uow import UnitOfWork
from service.usecases.cache import RecordCache
from service.usecases.entities import AfterCommit, Touched
from service.usecases.ingest import IngestRows

log = logging.getLogger(__name__)
BALANCES = ENTITIES["wallet_balances"]
WALLETS = ENTITIES["wallets"]
MAX_POINTS = 2_000  # history and portfolio points per reply (about 200 bytes each)
EARLIEST = datetime(1, 1, 8)  # naive UTC bounds of an open range (a week after year 1 starts)
LATEST = datetime(9999, 12, 24)
_EXACT = Context(prec=80)
_PLACES18 = Decimal(1).scaleb(-18)
_PLACES8 = Decimal(1).scaleb(-8)


def fixed(value: Decimal | str | None) -> FixedDecimal | None:
    return None if value is None else FixedDecimal(value)


class FollowBalances:
    """The balance rows a group's writes touched, brought into the derived state once, at the
    end of the group's transaction (one set of statements per group, not per write)."""

    def __init__(self) -> None:
        self.inserted: list[WalletBalance] = []
        self.changed: set[tuple[str, datetime]] = set()  # (wallet, naive UTC time) of changed rows
        # Each updated row as written last: a latest row that was updated is not read back from
        # balance_latest, which still holds it as it was.
        self.updated: dict[str, WalletBalance] = {}

    def run(self, uow: UnitOfWork) -> None:
        if self.changed:
            touched = self.changed | {(r.wallet_id, naive_utc(r.timestamp)) for r in self.inserted}
            follow(uow, touched, [], {**{r.id: r for r in self.inserted}, **self.updated})
        elif self.inserted:
            follow(uow, set(), self.inserted, {})


def derive(uow: UnitOfWork, touched: list[Touched]) -> None:
    """Roll-ups, latest rows, portfolio changes and wallets.balance follow the balance rows this
    write touched: new rows are merged in; a changed or deleted row has its intervals
    recomputed. Done once per transaction (FollowBalances). A wallet's chain change or delete
    moves its portfolio changes at once: they are kept per chain.

    A direct change of wallets.balance is refused while the wallet has balance rows: its
    balance is then its newest row's (docs/decisions.md, "Balances")."""
    task: FollowBalances | None = None
    for entity, before, after in touched:
        if entity == BALANCES.name:
            task = task or uow.deferred("follow_balances", FollowBalances)
            if before is None and isinstance(after, WalletBalance):
                task.inserted.append(after)
            elif isinstance(after, WalletBalance):
                task.updated[after.id] = after
            for row in (before, after):
                if isinstance(row, WalletBalance) and before is not None:
                    task.changed.add((row.wallet_id, naive_utc(row.timestamp)))
        elif entity == WALLETS.name and isinstance(before, Wallet) and isinstance(after, Wallet):
            refuse_direct_balance(uow, before, after)
            if before.blockchain_symbol != after.blockchain_symbol:
                uow.store(BalanceStore).move_wallet(after.id, before.blockchain_symbol, after.blockchain_symbol)
        elif entity == WALLETS.name and isinstance(before, Wallet) and after is None:
            uow.store(BalanceStore).forget_wallet(before.id, before.blockchain_symbol)
    if task is not None and uow.batch is None:  # nothing runs deferred work: do it now
        task.run(uow)


def refuse_direct_balance(uow: UnitOfWork, before: Wallet, after: Wallet) -> None:
    if before.balance != after.balance and uow.store(BalanceStore).has_rows(after.id):
        raise Conflict(
            f"wallet {after.id} has balance rows: its balance is its newest row's; write a wallet_balances row instead",
            [Detail("balance", "follows the wallet's newest balance row")],
        )


def follow(
    uow: UnitOfWork,
    changed: set[tuple[str, datetime]],
    inserted: Sequence[WalletBalance],
    written: dict[str, WalletBalance],
    staged: BalanceBatch | None = None,
) -> None:
    """Bring the derived state up to date, then every touched wallet's balance (a wallet whose
    balance moved gets a new version and goes through the outbox like any update). `written`:
    the rows the transaction inserted or updated, by id, as they are now; `staged`: the
    scratch tables holding `inserted`, when they came in through them (an ingest)."""
    store = uow.store(BalanceStore)
    if changed:
        wallets = store.refresh(changed, written)
    elif staged is not None:
        wallets = uow.store(StagedBalances).merge(staged)
    else:
        wallets = store.merge(inserted)
    wallet_repo = Repository(WALLETS, store.cur)
    for row in store.follow_latest(sorted(wallets), naive_utc(utc_now())):
        uow.record(WALLETS, "updated", wallet_repo.to_record(row))


class BalanceService:
    """The `ekko.wallet_balances.*` questions, batch ingest and the balance reports."""

    def __init__(self, db: Database, cache: RecordCache, *, after_commit: AfterCommit, limit: PayloadLimit) -> None:
        self.db = db
        self.cache = cache
        self.limit = limit
        self._after_commit = after_commit
        self._dropping: set[asyncio.Task[None]] = set()

    # -- ingest ----------------------------------------------------------------
    async def ingest(self, request: IngestRequest) -> IngestReply:
        with self.db.bulk():
            return await self._ingest(request)

    async def _ingest(self, request: IngestRequest) -> IngestReply:
        rows = IngestRows.of(request.items, utc_now())
        reply = IngestReply(count=len(rows.records), ids=rows.ids)
        self.limit_reply(len(encode(reply)), "the ingest reply")

        # The rows and what the writer needs of them alone are staged on a pool thread, beside
        # the writer's current transaction; the writer only merges them (decision 45).
        staged = await self.db.read(lambda cur: BalanceBatch.stage(cur, rows.data))

        def work(uow: UnitOfWork) -> list[Any]:
            rows.write(uow, staged)
            follow(uow, set(), rows.records, {}, staged)
            return uow.changes

        try:
            changes = await self.db.write(work, lookups=rows.lookups())
        except Exception:
            self._discard(staged)
            raise
        # Cancelled (a shutdown), the write may still be queued: its tables stay for it, and go
        # with the process. Committed: the cache and the relay hear of it at once, in commit
        # order with other writes, and the tables go after the reply.
        self.cache.apply(changes)
        self._after_commit(changes)
        self._discard(staged)
        return reply

    def _discard(self, staged: BalanceBatch) -> None:
        """Drop the staged tables on a pool thread, without holding up the reply."""
        task = asyncio.create_task(self._drop(staged))
        self._dropping.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._dropping.discard)

    async def _drop(self, staged: BalanceBatch) -> None:
        """If the tables cannot go (the database is closing), they go with the process: that
        is never the request's error, whose write may have committed."""
        try:
            await self.db.read(staged.drop)
        except Exception as exc:  # noqa: BLE001 - logged; the reply stands
            log.warning("staged ingest tables not dropped (%s); they go with the process", exc)

    def limit_reply(self, size: int, what: str) -> None:
        budget = self.limit.max_payload - ENVELOPE_RESERVE
        if size > budget:
            raise too_large(what, size, budget)

    # -- reads -----------------------------------------------------------------
    async def latest(self, request: LatestRequest) -> bytes:
        wallets = None if request.wallet_ids is UNSET else sorted({canonical_id(i) for i in request.wallet_ids})
        rows = await self.db.read(lambda cur: BalanceStore(cur).latest(wallets, MAX_LATEST_ROWS))
        if len(rows) == MAX_LATEST_ROWS and wallets is None:
            raise invalid("wallet_ids", f"more than {MAX_LATEST_ROWS - 1} wallets have balances: name the wallets")
        data = encode(LatestReply(items=cast(list[WalletBalance], rows)))
        self.limit_reply(len(data), "the latest balances")
        return data

    async def at(self, request: AtRequest) -> Record:
        wallet_id, at = canonical_id(request.wallet_id), naive_utc(to_utc("at", request.at))
        row = await self.db.read(lambda cur: BalanceStore(cur).at(wallet_id, at))
        if row is None:
            raise NotFound(f"wallet {wallet_id} has no balance at or before {request.at.isoformat()}")
        return row

    async def history(self, request: HistoryRequest) -> HistoryReply:
        low, high = span(request.from_, request.to)
        low = bucket(request.interval, low)
        wallet_id = canonical_id(request.wallet_id)
        rows = await self.db.read(
            lambda cur: BalanceStore(cur).history(wallet_id, request.interval, low, high, MAX_POINTS + 1)
        )
        if len(rows) > MAX_POINTS:
            raise invalid("from", f"more than {MAX_POINTS} intervals of {request.interval} hold rows: narrow from/to")
        points = [
            HistoryPoint(
                start=start.replace(tzinfo=UTC),
                first=FixedDecimal(first),
                last=FixedDecimal(last),
                min=FixedDecimal(low_),
                max=FixedDecimal(high_),
                count=count,
                last_fiat_value=fixed(fiat),
            )
            for start, first, last, low_, high_, count, fiat in rows
        ]
        return HistoryReply(points=points)

    async def performance(self, request: PerformanceRequest) -> PerformanceReply:
        low, high = span(request.from_, request.to)
        wallet_id = canonical_id(request.wallet_id)
        row = await self.db.read(lambda cur: BalanceStore(cur).performance(wallet_id, low, high))
        if row is None:
            return PerformanceReply(None, None, None, None, None, None, None, 0)
        first, last, low_, high_, count, total = row
        change = last - first
        avg = _EXACT.divide(Decimal(total), Decimal(count)).quantize(_PLACES18, ROUND_HALF_EVEN, _EXACT)
        pct = None if first == 0 else _EXACT.divide(change * 100, first).quantize(_PLACES8, ROUND_HALF_EVEN, _EXACT)
        return PerformanceReply(
            fixed(first), fixed(last), fixed(low_), fixed(high_), fixed(avg), fixed(change), fixed(pct), count
        )

    # -- reports ---------------------------------------------------------------
    async def wallet_stats(self) -> WalletStatsReply:
        statuses, chains = await self.db.read(in_one_snapshot(lambda cur: BalanceStore(cur).wallet_stats()))
        return WalletStatsReply(
            total=sum(n for _, n in statuses),
            by_status=dict(statuses),
            by_chain=[
                ChainStats(
                    chain,
                    n,
                    FixedDecimal(Decimal(b).quantize(_PLACES18, context=_EXACT)),
                    FixedDecimal(Decimal(f).quantize(_PLACES8, context=_EXACT)),
                )
                for chain, n, b, f in chains
            ],
        )

    async def portfolio_history(self, request: PortfolioRequest) -> PortfolioReply:
        low, high = naive_utc(to_utc("from", request.from_)), naive_utc(to_utc("to", request.to))
        if high <= low:
            raise invalid("to", "must be after from")
        low = bucket(request.interval, low)
        if (high - low) / LENGTHS[request.interval] > MAX_POINTS:
            raise invalid("from", f"the range holds more than {MAX_POINTS} intervals of {request.interval}")
        chain = None if request.blockchain_symbol is UNSET else request.blockchain_symbol
        total, deltas = await self.db.read(lambda cur: BalanceStore(cur).portfolio(request.interval, low, high, chain))
        points, step = [], LENGTHS[request.interval]
        changes = dict(deltas)
        start = low
        while start < high:
            total = _EXACT.add(total, changes.get(start, 0))
            points.append(
                PortfolioPoint(start.replace(tzinfo=UTC), FixedDecimal(total.quantize(_PLACES8, context=_EXACT)))
            )
            start += step
        return PortfolioReply(points=points)


MAX_LATEST_ROWS = 10_001  # latest without wallet_ids: at most 10,000 wallets (one more tells)


def span(low: Any, high: Any) -> tuple[datetime, datetime]:
    """An optional [from, to) as naive UTC; 400 naming `to` when it is not after `from`."""
    start = EARLIEST if low is UNSET else naive_utc(to_utc("from", low))
    end = LATEST if high is UNSET else naive_utc(to_utc("to", high))
    if end <= start:
        raise invalid("to", "must be after from")
    return start, end
