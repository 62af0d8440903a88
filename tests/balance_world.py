"""Random writes through the entity services and the group commit, as the service runs them
(balance creates, updates, deletes and ingests, wallet chain changes and deletes, new
wallets), with what the writes that succeeded left kept in plain Python; and the derived
balance tables as a rebuild must give them again. For the tests of the derived state."""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schema.balances import IngestRequest
from schema.common import DeleteRequest
from schema.wallet_balances import WalletBalance, WalletBalanceCreate, WalletBalanceUpdate
from schema.wallets import Wallet, WalletCreate, WalletUpdate
from service.model.limits import PayloadLimit
from service.model.registry import ENTITIES
from service.model.rules import Rules
from service.store.database import Cursor, Database
from service.usecases.balances import BalanceService, derive
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService

T0 = datetime(2026, 3, 1, 22)  # naive UTC, as stored
CHAINS = ("ETH", "AVAX", "BTC")


def derived_tables(cur: Cursor) -> tuple[list[tuple[Any, ...]], ...]:
    """The roll-ups and latest rows, whole: what a rebuild from the rows must give again."""
    return tuple(
        cur.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in ("balance_rollups", "balance_latest")
    )


class World:
    """The services, and what the writes that succeeded left, in plain Python."""

    def __init__(self, db: Database, rng: random.Random) -> None:
        cache = RecordCache(1000)

        def service(name: str) -> EntityService:
            return EntityService(ENTITIES[name], db, cache, Rules(), after_commit=lambda c: None, derive=derive)

        self.wallets_service, self.rows_service = service("wallets"), service("wallet_balances")
        self.balances = BalanceService(db, cache, after_commit=lambda c: None, limit=PayloadLimit())
        self.rng = rng
        self.chains: dict[str, str] = {}
        self.rows: dict[str, WalletBalance] = {}
        self.made = 0

    def moment(self) -> datetime:
        minutes = self.rng.choice([self.rng.randrange(-60 * 24 * 20, 60 * 24 * 20), 30, 90])  # 30, 90: ties
        return (T0 + timedelta(minutes=minutes)).replace(tzinfo=UTC)

    def fiat(self) -> Decimal | None:
        return None if self.rng.random() < 0.2 else Decimal(self.rng.randrange(-(10**10), 10**14)).scaleb(-8)

    def item(self, wallet: str, at: datetime | None = None) -> WalletBalanceCreate:
        return WalletBalanceCreate(
            wallet_id=wallet,
            balance=Decimal(self.rng.randrange(10**6)),
            timestamp=at or self.moment(),
            fiat_value=self.fiat(),
        )

    def items(self, wallets: list[str]) -> list[WalletBalanceCreate]:
        """An ingest's items: at random times, or (half the time) each wallet's rows after its
        newest row in time order, as balance pipelines send them (the appends' path)."""
        if self.rng.random() < 0.5:
            return [self.item(w) for w in wallets]
        start = T0.replace(tzinfo=UTC) - timedelta(days=30)
        newest = {w: max((r.timestamp for r in self.rows.values() if r.wallet_id == w), default=start) for w in wallets}
        items = []
        for wallet in wallets:
            newest[wallet] += timedelta(minutes=self.rng.choice([0, 1, 30, 61, 1_500]))  # 0: a tie, ordered by id
            items.append(self.item(wallet, newest[wallet]))
        return items

    async def new_wallet(self) -> None:
        self.made += 1
        chain = self.rng.choice(CHAINS)
        wallet = await self.wallets_service.create(WalletCreate(blockchain_symbol=chain, address=f"0x{self.made:040x}"))
        assert isinstance(wallet, Wallet)
        self.chains[wallet.id] = chain

    def operations(self) -> list[Callable[[], Awaitable[None]]]:
        """One group's writes, each on rows and wallets no other write of the group touches
        (the order of writes inside a group is not the order they were made)."""
        ops: list[Callable[[], Awaitable[None]]] = []
        wallets = list(self.chains)
        self.rng.shuffle(wallets)
        rows = list(self.rows.values())
        self.rng.shuffle(rows)
        busy = set(wallets[:2])  # these wallets only change or go; the others get rows
        for wallet in wallets[:2]:
            change = self.delete_wallet if self.rng.random() < 0.15 and len(wallets) > 4 else self.change_chain
            ops.append(functools.partial(change, wallet))
        free = [w for w in wallets if w not in busy] or [None]
        for _ in range(self.rng.randrange(1, 9)):
            if free[0] is not None:
                ops.append(functools.partial(self.create, self.rng.choice(free)))
        for row in [r for r in rows if r.wallet_id not in busy][: self.rng.randrange(0, 4)]:
            ops.append(functools.partial(self.update if self.rng.random() < 0.6 else self.delete, row))
        if free[0] is not None and self.rng.random() < 0.25:
            size = self.rng.choice([3, 20, 60, 1_100])  # any size: an ingest takes the staged path
            ops.append(functools.partial(self.ingest, self.items([self.rng.choice(free) for _ in range(size)])))  # type: ignore[arg-type]
        if self.rng.random() < 0.4:
            ops.append(self.new_wallet)
        return ops

    async def create(self, wallet: str) -> None:
        row = await self.rows_service.create(self.item(wallet))
        assert isinstance(row, WalletBalance)
        self.rows[row.id] = row

    async def ingest(self, items: list[WalletBalanceCreate]) -> None:
        reply = await self.balances.ingest(IngestRequest(items=items))
        for row_id, item in zip(reply.ids, items, strict=True):
            self.rows[row_id] = WalletBalance(
                id=row_id,
                created_at=T0,
                updated_at=T0,
                version=1,
                wallet_id=item.wallet_id,
                timestamp=item.timestamp,  # type: ignore[arg-type]
                balance=item.balance,
                fiat_value=item.fiat_value,
            )

    async def update(self, row: WalletBalance) -> None:
        changes: dict[str, Any] = self.rng.choice(
            [
                {"timestamp": self.moment()},
                {"fiat_value": self.fiat()},
                {"timestamp": self.moment(), "fiat_value": None},
            ]
        )
        updated = await self.rows_service.update(WalletBalanceUpdate(id=row.id, **changes))
        assert isinstance(updated, WalletBalance)
        self.rows[row.id] = updated

    async def delete(self, row: WalletBalance) -> None:
        await self.rows_service.delete(DeleteRequest(id=row.id))
        del self.rows[row.id]

    async def change_chain(self, wallet: str) -> None:
        chain = self.rng.choice([c for c in CHAINS if c != self.chains[wallet]])
        await self.wallets_service.update(WalletUpdate(id=wallet, blockchain_symbol=chain))
        self.chains[wallet] = chain

    async def delete_wallet(self, wallet: str) -> None:
        await self.wallets_service.delete(DeleteRequest(id=wallet, cascade=True))
        del self.chains[wallet]
        self.rows = {i: r for i, r in self.rows.items() if r.wallet_id != wallet}
