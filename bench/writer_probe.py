"""Where a create's time goes: the service's own write path, in this process, no NATS hop.

Every write runs on the one writer thread. `service.store.database.Database.write`
group-commits (writes queued while one transaction runs share the next one);
the probe compares it with one transaction per write (the path before group
commit, rebuilt here from `Database.transaction`), and splits the writer's time
into the SQL statements of a create, the rest of the Python work, and COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb

from bench.harness import connect, table
from schema.wallet_balances import WalletBalanceCreate
from schema.wallets import WalletCreate
from service.model.registry import ENTITIES
from service.model.rules import WalletBalanceRules, WalletRules
from service.store.database import Cursor, Database
from service.store.uow import UnitOfWork
from service.store.write_batch import Lookup
from service.sync.jetstream import JetStreamSync
from service.sync.relay import Relay
from service.usecases.cache import RecordCache
from service.usecases.entities import EntityService

T = TypeVar("T")
INFLIGHT = 32


class TimedCursor:
    """Times each `execute`, keyed by its statement's first words."""

    def __init__(self, cur: Cursor, seconds: defaultdict[str, float]) -> None:
        self._cur = cur
        self._seconds = seconds

    def execute(self, sql: str, params: Any = None) -> Cursor:
        start = time.perf_counter()
        try:
            return self._cur.execute(sql, params)
        finally:
            words = sql.split()
            self._seconds[" ".join(words[:4] if words[0] == "SELECT" else words[:3])] += time.perf_counter() - start


class TimedDatabase(Database):
    """The service's Database (group commit), timing transactions, COMMITs and statements."""

    def __init__(self, path: Path, pool_size: int = 10) -> None:
        super().__init__(path, pool_size)
        self.reset()

    def reset(self) -> None:
        self.writes = self.relay_writes = self.transactions = 0
        self.work = self.commit = 0.0
        self.statements: defaultdict[str, float] = defaultdict(float)

    async def write(self, fn: Callable[[UnitOfWork], T], *, lookups: Sequence[Lookup] = (), alone: bool = False) -> T:
        self.writes += 1
        self.relay_writes += "Relay" in fn.__qualname__
        return await super().write(fn, lookups=lookups, alone=alone)

    def transaction(self, fn: Callable[[Cursor], T], cursor: Cursor | None = None) -> T:
        cur = cursor or self._writer_cursor
        assert cur is not None, "database is not open"
        t0 = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        try:
            # A stand-in, not a connection: repositories and WriteBatch only call execute().
            timed = cast(Cursor, TimedCursor(cur, self.statements))
            result = fn(timed)
            self._batch.flush(timed)
            t1 = time.perf_counter()
            cur.execute("COMMIT")
            self._batch.forget()
        except BaseException:
            self._batch.clear()
            with contextlib.suppress(duckdb.TransactionException):
                cur.execute("ROLLBACK")
            raise
        self.work += t1 - t0
        self.commit += time.perf_counter() - t1
        self.transactions += 1
        return result


class OneCommitPerWrite(TimedDatabase):
    """The write path without group commit: each write its own transaction and fdatasync."""

    async def write(self, fn: Callable[[UnitOfWork], T], *, lookups: Sequence[Lookup] = (), alone: bool = False) -> T:
        self.writes += 1
        self.relay_writes += "Relay" in fn.__qualname__
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, self.transaction, lambda cur: self._unit(cur).run(fn)
        )


async def _creates(db: TimedDatabase, nats_url: str | None, n: int, inflight: int) -> dict[str, float]:
    """n wallet_balances creates, `inflight` at once, the relay publishing when nats_url is given."""
    db.open()
    relay: Relay | None = None
    nc = None

    def notify(changes: Any) -> None:
        if relay is not None and changes:
            relay.notify()

    services = {
        name: EntityService(ENTITIES[name], db, RecordCache(50_000), rules, after_commit=notify)
        for name, rules in (("wallets", WalletRules()), ("wallet_balances", WalletBalanceRules()))
    }
    try:
        wallet = await services["wallets"].create(WalletCreate(blockchain_symbol="ETH", address="0x" + "cd" * 20))
        if nats_url is not None:
            nc = await connect(nats_url)
            sync = JetStreamSync()
            await sync.attach(nc)
            relay = Relay(db, sync)
            relay.start()
        request = WalletBalanceCreate(wallet_id=wallet.id, balance=Decimal("1234.5678"), token_price=Decimal("2000.5"))
        db.reset()
        remaining = iter(range(n))

        async def worker() -> None:
            for _ in remaining:  # shared: n creates in all
                await services["wallet_balances"].create(request)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - start
        if relay is not None:
            while await relay.pending():
                await asyncio.sleep(0.02)
        return {"rate": n / elapsed, "elapsed": elapsed, "creates": n}
    finally:
        if relay is not None:
            await relay.stop()
        if nc is not None:
            await nc.drain()
        db.close()


async def _wallet_creates(db: TimedDatabase, stored: int, n: int, inflight: int) -> float:
    """Seconds of writer work per wallet create (a unique key checked each) with `stored` wallets
    of random addresses already in the table (inserted in bulk before the probe)."""
    db.open()
    rng = random.Random(stored)
    service = EntityService(ENTITIES["wallets"], db, RecordCache(50_000), WalletRules(), after_commit=lambda c: None)
    try:
        addresses = ["0x" + rng.randbytes(20).hex() for _ in range(stored + n)]
        db.connection.execute(
            "INSERT INTO wallets SELECT uuid()::VARCHAR, now(), now(), 1, 'ETH', a, NULL, 0, 'active', '3:eth' || a"
            " FROM (SELECT unnest(?::VARCHAR[]) AS a)",
            [addresses[:stored]],
        )
        db.reset()
        fresh = iter(addresses[stored:])

        async def worker() -> None:
            for address in fresh:
                await service.create(WalletCreate(blockchain_symbol="ETH", address=address))

        await asyncio.gather(*(worker() for _ in range(inflight)))
        return (db.work + db.commit) / n
    finally:
        db.close()


def bare_commit(path: Path, n: int) -> float:
    """Seconds per one-row INSERT + COMMIT on a fresh file: the fdatasync floor of a write."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE probe (x INTEGER)")
    start = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO probe VALUES (?)", [i])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed / n


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def probe(nats_url: str, tmp: Path, *, quick: bool = False) -> None:
    n = 300 if quick else 3000
    print(f"\nwriter probe: {n:,} wallet_balances creates through EntityService in this process (no request hop)")
    runs = [
        ("one transaction per write", OneCommitPerWrite, False, 1),
        ("one transaction per write", OneCommitPerWrite, False, INFLIGHT),
        ("one transaction per write", OneCommitPerWrite, True, INFLIGHT),
        ("group commit (service)", TimedDatabase, False, INFLIGHT),
        ("group commit (service)", TimedDatabase, True, INFLIGHT),
    ]
    rows, breakdown = [], None
    for i, (label, db_class, with_relay, inflight) in enumerate(runs):
        db = db_class(tmp / f"probe{i}.db", 4)
        r = await _creates(db, nats_url if with_relay else None, n, inflight)
        creates = db.writes - db.relay_writes
        rows.append(
            [
                label,
                inflight,
                "on" if with_relay else "off",
                f"{r['rate']:,.0f}",
                f"{db.writes / db.transactions:.1f}",
                f"{db.relay_writes / creates:.2f}",
                _ms(db.work / creates),
                _ms(db.commit / db.transactions),
                _ms(db.commit / creates),
                f"{(db.work + db.commit) / r['elapsed']:.0%}",
            ]
        )
        if db_class is TimedDatabase and with_relay:
            breakdown = (db, creates)
    print(
        table(
            [
                "writer",
                "in flight",
                "relay",
                "creates/s",
                "writes / tx",
                "relay writes / create",
                "work ms / create",
                "COMMIT ms / tx",
                "COMMIT ms / create",
                "writer busy",
            ],
            rows,
        )
    )
    if breakdown is not None:
        db, creates = breakdown
        statements = sorted(db.statements.items(), key=lambda kv: -kv[1])
        other = db.work - sum(db.statements.values())
        lines = [[sql, _ms(s / creates)] for sql, s in statements]
        lines += [
            ["(Python between statements: records, encoding, rules)", _ms(other / creates)],
            ["COMMIT (shared by the group)", _ms(db.commit / creates)],
        ]
        print("writer time per create, group commit with relay:")
        print(table(["statement", "ms / create"], lines))
    costs = {
        stored: await _wallet_creates(TimedDatabase(tmp / f"wallets{stored}.db", 4), stored, n, INFLIGHT)
        for stored in (1_000, 100_000)
    }
    print(
        f"writer ms per wallets create (unique key checked), {INFLIGHT} in flight: "
        + ", ".join(f"{stored:,} stored {_ms(cost)}" for stored, cost in costs.items())
        + f" (100k / 1k: {costs[100_000] / costs[1_000]:.2f}x)"
    )
    per_commit = bare_commit(tmp / "bare.db", min(n, 1000))
    print(f"bare one-row INSERT + COMMIT: {per_commit * 1000:.2f} ms ({1 / per_commit:,.0f} commits/s)")
