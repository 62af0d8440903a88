"""Lookups by id that arrive together share one pool hop and one query.

A DuckDB statement has a fixed cost (parse, plan, start the executor: ~0.3 ms of a
0.45 ms primary-key lookup here); `id IN (?, ...)` of eight ids costs ~0.13 ms per id.
So a lookup starts at once while fewer than `concurrency` are being read; beyond that
it waits, and every id that waited goes in the next read together. Under light load
nothing waits; under load the reads grow instead of queueing one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

# The read: ids -> id -> value of those ids found.
ReadMany = Callable[[Sequence[str]], Awaitable[dict[str, T]]]


class BatchedLookup(Generic[T]):
    """`get(id)` through `read_many`, at most `concurrency` reads at a time, at most
    `max_batch` ids per read. Runs on one event loop; not thread-safe."""

    def __init__(self, read_many: ReadMany[T], *, concurrency: int = 2, max_batch: int = 64) -> None:
        self._read_many = read_many
        self.concurrency = concurrency
        self.max_batch = max_batch
        self._reading = 0
        self._waiting: dict[str, list[asyncio.Future[T | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.reads = 0  # reads started, for tests and metrics
        self.looked_up = 0  # ids they asked for

    async def get(self, entity_id: str) -> T | None:
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(entity_id, []).append(future)
        self._start()
        return await future

    def _start(self) -> None:
        while self._waiting and self._reading < self.concurrency:
            ids = list(self._waiting)[: self.max_batch]
            batch = {entity_id: self._waiting.pop(entity_id) for entity_id in ids}
            self._reading += 1
            self.reads += 1
            self.looked_up += len(batch)
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read(self, batch: dict[str, list[asyncio.Future[T | None]]]) -> None:
        waiters = [(entity_id, future) for entity_id, futures in batch.items() for future in futures]
        try:
            found = await self._read_many(list(batch))
        except asyncio.CancelledError:
            for _, future in waiters:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, re-raised in its own request
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
        else:
            for entity_id, future in waiters:
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(found.get(entity_id))
        finally:
            self._reading -= 1
            self._start()
