"""service.usecases.cache: exact as long as every write reports to it; a read that raced a write
(or a wholesale clear) must not put a stale record back."""

from __future__ import annotations

from datetime import UTC, datetime

from service.store.outbox import Change
from service.usecases.cache import RecordCache

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def change(entity: str, entity_id: str, data: bytes | None) -> Change:
    return Change("e", entity, "deleted" if data is None else "updated", entity_id, 2, T0, data)


def test_committed_changes_replace_and_evict_entries() -> None:
    cache = RecordCache(10)
    cache.fill("wallets", "a", b"v1", cache.token("wallets"))
    cache.apply([change("wallets", "a", b"v2")])
    assert cache.get("wallets", "a") == b"v2"
    cache.apply([change("wallets", "a", None)])
    assert cache.get("wallets", "a") is None


def test_a_read_that_raced_a_write_does_not_fill() -> None:
    cache = RecordCache(10)
    token = cache.token("wallets")
    cache.apply([change("wallets", "b", None)])  # a write landed while the read ran
    cache.fill("wallets", "a", b"stale", token)
    assert cache.get("wallets", "a") is None


def test_a_clear_stops_fills_from_reads_already_running_for_any_entity() -> None:
    cache = RecordCache(10)
    token = cache.token("agents")  # never cached nor written before
    cache.fill("wallets", "a", b"v1", cache.token("wallets"))
    cache.clear()
    cache.fill("agents", "x", b"stale", token)
    assert cache.get("agents", "x") is None and cache.get("wallets", "a") is None
    cache.fill("agents", "x", b"fresh", cache.token("agents"))
    assert cache.get("agents", "x") == b"fresh"


def test_entries_are_bounded_per_entity_least_recently_used_first() -> None:
    cache = RecordCache(2)
    for key in "abc":
        cache.fill("wallets", key, key.encode(), cache.token("wallets"))
    assert [cache.get("wallets", k) for k in "abc"] == [None, b"b", b"c"]
