"""Lookups that arrive together share one read; each caller still gets its own answer or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from service.usecases.batching import BatchedLookup


class Reads:
    """A read_many that holds every read until released, and remembers what each asked for."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.asked: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, ids: Sequence[str]) -> dict[str, str]:
        self.asked.append(list(ids))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {i: f"value of {i}" for i in ids if not i.startswith("missing")}


async def until(predicate: object) -> None:
    for _ in range(1000):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_lookups_beyond_the_reads_in_flight_wait_and_go_together() -> None:
    reads = Reads()
    lookup: BatchedLookup[str] = BatchedLookup(reads, concurrency=1)
    first = asyncio.ensure_future(lookup.get("a"))
    await until(lambda: reads.asked == [["a"]])  # alone: it starts at once
    rest = [asyncio.ensure_future(lookup.get(i)) for i in ("b", "c", "missing-d", "b")]
    await asyncio.sleep(0)
    assert reads.asked == [["a"]]  # they wait for the read in flight
    reads.release.set()
    assert await first == "value of a"
    assert await asyncio.gather(*rest) == ["value of b", "value of c", None, "value of b"]
    assert reads.asked == [["a"], ["b", "c", "missing-d"]]  # one read for all of them, b asked once
    assert (lookup.reads, lookup.looked_up) == (2, 4)


async def test_a_read_holds_at_most_max_batch_ids() -> None:
    reads = Reads()
    reads.release.set()
    lookup: BatchedLookup[str] = BatchedLookup(reads, concurrency=1, max_batch=2)
    assert await asyncio.gather(*(lookup.get(str(i)) for i in range(5))) == [f"value of {i}" for i in range(5)]
    assert [len(ids) for ids in reads.asked] == [1, 2, 2]


async def test_every_waiter_of_a_failed_read_gets_its_error_and_later_reads_go_on() -> None:
    reads = Reads(fail=RuntimeError("disk gone"))
    lookup: BatchedLookup[str] = BatchedLookup(reads, concurrency=1)
    waiters = [asyncio.ensure_future(lookup.get(i)) for i in ("a", "b", "c")]
    await until(lambda: len(reads.asked) == 1)
    reads.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and str(r) == "disk gone" for r in results)
    reads.fail = None
    assert await lookup.get("d") == "value of d"


async def test_a_cancelled_caller_does_not_disturb_the_others_of_its_read() -> None:
    reads = Reads()
    lookup: BatchedLookup[str] = BatchedLookup(reads, concurrency=1)
    busy = asyncio.ensure_future(lookup.get("a"))
    await until(lambda: len(reads.asked) == 1)
    gone, kept = asyncio.ensure_future(lookup.get("b")), asyncio.ensure_future(lookup.get("b"))
    await asyncio.sleep(0)
    gone.cancel()
    reads.release.set()
    assert await kept == "value of b" and await busy == "value of a"
    with pytest.raises(asyncio.CancelledError):
        await gone
