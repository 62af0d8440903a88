"""service.model.ids: ids drawn in blocks are still version 4 UUIDs, canonical, and never repeat."""

from __future__ import annotations

import threading
import uuid

from service.model.ids import new_id


def test_ids_are_canonical_version_4_uuids() -> None:
    for text in (new_id() for _ in range(5000)):  # past one block of the pool
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_ids_drawn_from_several_threads_never_repeat() -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        into.extend(new_id() for _ in range(20_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [text for into in drawn for text in into]
    assert len(set(everything)) == len(everything) == 80_000
