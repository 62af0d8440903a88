"""Writes that share one group-commit transaction see each other in order: a parent
deleted earlier in the group is gone for a child created later, a child created earlier
blocks a later plain delete of its parent, and a refused write never takes the others
down (service.store.database, service.store.write_batch, through the real service)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import Any

from schema.common import DeleteRequest
from schema.wallet_balances import WalletBalanceCreate
from schema.wallets import WalletCreate
from service.app import Ekko
from service.model.errors import Conflict, NotFound
from tests.sync_helpers import eventually


@contextlib.asynccontextmanager
async def writer_blocked(ekko: Ekko) -> AsyncIterator[None]:
    """The writer thread is busy inside: writes made meanwhile queue up and run as one group
    once it is free again (on leaving)."""
    started, release = threading.Event(), threading.Event()
    blocker = asyncio.create_task(ekko.db.write(lambda uow: started.set() or release.wait(10)))
    assert await asyncio.to_thread(started.wait, 10)
    try:
        yield
    finally:
        release.set()
        await blocker


async def in_one_group(ekko: Ekko, *writes: Awaitable[Any]) -> list[Any]:
    """Queue the writes behind a blocked writer so they run as one group, in order."""
    async with writer_blocked(ekko):
        groups = ekko.db.group_commits
        tasks = []
        for write in writes:
            tasks.append(asyncio.ensure_future(write))
            await asyncio.sleep(0.01)  # queued in this order
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert ekko.db.group_commits - groups <= 2, "ran as one group (plus one retry without a refused write)"
    return outcomes


async def wallet(ekko: Ekko, n: int) -> Any:
    return await ekko.services["wallets"].create(WalletCreate(blockchain_symbol="ETH", address=f"0x{n:040x}"))


def balance(ekko: Ekko, wallet_id: str) -> Awaitable[Any]:
    return ekko.services["wallet_balances"].create(WalletBalanceCreate(wallet_id=wallet_id, balance=Decimal("1.5")))


async def test_a_child_created_after_its_parent_was_deleted_in_the_same_group_is_refused(ekko: Ekko) -> None:
    parent, other = await wallet(ekko, 1), await wallet(ekko, 2)
    outcomes = await in_one_group(
        ekko,
        balance(ekko, other.id),
        ekko.services["wallets"].delete(DeleteRequest(id=parent.id)),
        balance(ekko, parent.id),
        balance(ekko, other.id),
    )
    assert outcomes[1].id == parent.id
    assert isinstance(outcomes[2], NotFound), outcomes[2]
    assert outcomes[0].wallet_id == outcomes[3].wallet_id == other.id
    rows = await ekko.db.read(lambda cur: cur.execute("SELECT wallet_id FROM wallet_balances").fetchall())
    assert rows == [(other.id,), (other.id,)]


async def test_a_child_created_earlier_in_the_group_blocks_a_plain_delete_of_its_parent(ekko: Ekko) -> None:
    parent = await wallet(ekko, 3)
    outcomes = await in_one_group(
        ekko, balance(ekko, parent.id), ekko.services["wallets"].delete(DeleteRequest(id=parent.id))
    )
    assert outcomes[0].wallet_id == parent.id
    assert isinstance(outcomes[1], Conflict), outcomes[1]
    assert "still has 1 wallet_balances" in outcomes[1].message


async def test_a_cascading_delete_later_in_the_group_removes_children_created_before_it(ekko: Ekko) -> None:
    parent = await wallet(ekko, 4)
    outcomes = await in_one_group(
        ekko,
        balance(ekko, parent.id),
        balance(ekko, parent.id),
        ekko.services["wallets"].delete(DeleteRequest(id=parent.id, cascade=True)),
    )
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    counts = await ekko.db.read(
        lambda cur: cur.execute(
            "SELECT (SELECT count(*) FROM wallets), (SELECT count(*) FROM wallet_balances)"
        ).fetchall()
    )
    assert counts == [(0, 0)]


async def test_creates_over_nats_up_to_write_workers_wait_for_the_writer_at_once(ekko: Ekko, client: Any) -> None:
    """One subscriber per write subject runs write_workers requests as tasks (decision 42): all of
    them reach the writer's queue while it is busy and commit as one group."""
    workers = ekko.settings.write_workers_per_subject

    async def all_queued() -> bool:
        return ekko.db.queue_length == workers

    async with writer_blocked(ekko):
        groups = ekko.db.group_commits
        creates = [
            asyncio.ensure_future(
                client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": f"0x{n:040x}"})
            )
            for n in range(workers)
        ]
        await eventually(all_queued, 5, what="every request in flight waiting in the writer's queue")
    created = await asyncio.gather(*creates)
    assert sorted(w["address"] for w in created) == [f"0x{n:040x}" for n in range(workers)]
    assert ekko.db.group_commits - groups == 1
