"""An outbox entry that stands for a batch of creates (an ingest), on a real DuckDB file:
expanded it is exactly the changes the creates would have queued one by one; the outbox's
counts, pending ids and dead letters see every member; the depth check of large bodies
agrees with the token walk it shortcuts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from schema.common import FixedDecimal, encode
from schema.wallet_balances import WalletBalance
from service.model.registry import ENTITIES
from service.store.database import Database
from service.store.dead_letter import DeadLetterRepository
from service.store.outbox import OutboxRepository, expand
from service.store.uow import UnitOfWork

BALANCES = ENTITIES["wallet_balances"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection of a Database at the latest schema (no writer thread is used here)."""
    db = Database(tmp_path / "ekko.db").open()
    yield db.connection
    db.close()


def balances(count: int) -> list[WalletBalance]:
    return [
        WalletBalance(
            id=str(uuid.UUID(int=n + 1)),
            created_at=T0,
            updated_at=T0,
            version=1,
            wallet_id=str(uuid.UUID(int=10**6)),
            timestamp=T0 + timedelta(seconds=n),
            balance=FixedDecimal(Decimal(n).scaleb(-18).quantize(Decimal("1e-18"))),
            token_price=None,
            fiat_value=FixedDecimal("0.00000001") if n % 2 else None,
        )
        for n in range(count)
    ]


def queue(con: duckdb.DuckDBPyConnection, records: list[WalletBalance], before: int = 0) -> UnitOfWork:
    """One write that records `before` single changes, then the records as one batch entry."""
    uow = UnitOfWork(con, correlation_id="corr-1")
    for record in records[:before]:
        uow.record(BALANCES, "created", record)
    uow.record_created(BALANCES, encode(records[before:]), len(records) - before)
    uow.seal()
    return uow


def test_a_batch_entry_expands_to_the_changes_its_creates_would_have_queued(con: duckdb.DuckDBPyConnection) -> None:
    records = balances(7)
    uow = queue(con, records, before=2)
    alone = UnitOfWork(con, correlation_id="corr-1")
    for record in records:
        alone.record(BALANCES, "created", record)
    alone.seal()

    stored = OutboxRepository(con).pending(1000)
    mine = [c for c in stored if c.tx_id == uow.tx_id]
    assert len(mine) == 7 and {c.tx_count for c in mine} == {7}
    for got, want in zip(mine, alone.changes, strict=True):
        assert (got.entity, got.action, got.entity_id, got.version, got.data, got.before) == (
            want.entity,
            want.action,
            want.entity_id,
            want.version,
            want.data,  # the bytes `encode(record)` makes: KV values equal a single create's
            want.before,
        )
        assert (got.tx_index, got.tx_count, got.correlation_id, got.changes) == (
            want.tx_index,
            want.tx_count,
            want.correlation_id,
            None,
        )
    assert len({c.event_id for c in mine}) == 7
    entry = next(c for c in uow.changes if c.changes is not None)
    assert [c.event_id for c in expand(entry)] == [c.event_id for c in expand(entry)]  # stable: retries dedupe
    assert all(uuid.UUID(c.event_id).version == 4 for c in mine)


def test_pending_takes_whole_entries_and_counts_their_members(con: duckdb.DuckDBPyConnection) -> None:
    records = balances(30)
    queue(con, records[:10])
    queue(con, records[10:25])
    queue(con, records[25:])
    outbox = OutboxRepository(con)
    assert outbox.backlog()[0] == 30
    assert [c.entity_id for c in outbox.pending(12)] == [r.id for r in records[:10]]  # the next would pass 12
    assert len(outbox.pending(5)) == 10  # at least one entry, whole
    assert len(outbox.pending(25)) == 25
    assert outbox.pending_ids(BALANCES.name) == {r.id for r in records}
    seq = outbox.pending(12)[-1].seq
    outbox.remove_through(seq)
    assert outbox.backlog()[0] == 20
    assert outbox.clear() == 20


def test_dead_members_of_a_batch_are_one_dead_letter_row_counting_them(con: duckdb.DuckDBPyConnection) -> None:
    records = balances(5)
    queue(con, records)
    changes = OutboxRepository(con).pending(100)
    dead = DeadLetterRepository(con)
    dead.add([(changes[1], "refused"), (changes[3], "refused")])
    assert dead.count() == 2
    (sample,) = dead.sample()
    assert sample.error.startswith("refused") and "1 more" in sample.error
    stored = con.execute("SELECT data, changes FROM outbox_dead_letter").fetchall()
    assert [json.loads(stored[0][0])[i]["id"] for i in (0, 1)] == [records[1].id, records[3].id]
    assert stored[0][1] == 2
    queue(con, balances(1))
    single = OutboxRepository(con).pending(100)[-1]
    dead.add([(single, "too large")])  # one member alone is stored as the single change it is
    assert dead.count() == 3
    assert dead.clear() == 3
