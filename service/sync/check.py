"""Compare the KV buckets with DuckDB (verify) and rewrite them from DuckDB (repair)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from schema.common import encode
from service.model.registry import ENTITIES, ENTITY_ORDER
from service.store.database import Cursor, Database
from service.store.dead_letter import DeadLetter, DeadLetterRepository
from service.store.outbox import OutboxRepository
from service.store.repository import Repository
from service.sync.buckets import read_bucket
from service.sync.jetstream import PERMANENT_API_ERRORS, JetStreamSync, kv_refusal, pipelined

SAMPLE = 10
log = logging.getLogger(__name__)


class BucketDiff(msgspec.Struct):
    entity: str
    duckdb_rows: int
    kv_keys: int
    missing: int  # in DuckDB, not in KV
    extra: int  # in KV, not in DuckDB
    different: int
    sample_missing: list[str] = []
    sample_extra: list[str] = []
    sample_different: list[str] = []


class VerifyReport(msgspec.Struct):
    """in_sync also needs an empty dead-letter table: a dead entry's event never reached
    EKKO_EVENTS and its KV value may be stale, whatever KV holds now."""

    in_sync: bool
    buckets: list[BucketDiff]
    dead_letters: int = 0
    sample_dead_letters: list[DeadLetter] = []


def _dead_letters(cur: Cursor) -> tuple[int, list[DeadLetter]]:
    repo = DeadLetterRepository(cur)
    return repo.count(), repo.sample()


def _kv_values(cur: Cursor, entity: str, only: set[str] | None = None) -> dict[str, bytes]:
    """DuckDB's rows of an entity (those in `only`, when given) as KV values: the reply
    format, no secrets. By id."""
    rows = Repository(ENTITIES[entity], cur).list_all()
    return {r.id: encode(r) for r in rows if only is None or r.id in only}


async def _duckdb_state(db: Database, entity: str) -> dict[str, bytes]:
    return await db.read(lambda cur: _kv_values(cur, entity))


async def republish(db: Database, kv: KeyValue, entity: str, ids: Iterable[str]) -> int:
    """Put DuckDB's current value under these keys, except keys with changes still in the
    outbox: the relay puts those, newer. Run it where no relay batch can land in between
    (Relay.paused), or no relay runs. Returns keys put."""
    wanted = set(ids)

    def load(cur: Cursor) -> dict[str, bytes]:
        return _kv_values(cur, entity, wanted - OutboxRepository(cur).pending_ids(entity))

    values = await db.read(load)
    max_payload = kv._js._nc.max_payload  # nats-py's KeyValue keeps its connection there only
    fitting = [(k, v) for k, v in values.items() if kv_refusal(k, v, max_payload) is None]
    await pipelined(lambda item: kv.put(*item), fitting)
    return len(fitting)


def _same(a: bytes, b: bytes) -> bool:
    return a == b or msgspec.json.decode(a) == msgspec.json.decode(b)


async def _states(db: Database, sync: JetStreamSync, entity: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(what DuckDB says each key should hold, what the bucket holds)."""
    return await _duckdb_state(db, entity), (await read_bucket(sync.js, entity)).values


async def verify(db: Database, sync: JetStreamSync) -> VerifyReport:
    buckets = []
    for entity in ENTITY_ORDER:
        want, have = await _states(db, sync, entity)
        missing = sorted(k for k in want if k not in have)
        extra = sorted(k for k in have if k not in want)
        different = sorted(k for k in want if k in have and not _same(want[k], have[k]))
        buckets.append(
            BucketDiff(
                entity,
                len(want),
                len(have),
                len(missing),
                len(extra),
                len(different),
                missing[:SAMPLE],
                extra[:SAMPLE],
                different[:SAMPLE],
            )
        )
    dead, sample = await db.read(_dead_letters)
    in_sync = dead == 0 and all(b.missing == b.extra == b.different == 0 for b in buckets)
    return VerifyReport(in_sync, buckets, dead, sample)


async def _put_unless_refused(kv: KeyValue, key: str, value: bytes) -> bool:
    """kv.put; False when the bucket refuses the value for good (its max_value_size)."""
    try:
        await kv.put(key, value)
    except nats.js.errors.APIError as exc:
        if exc.err_code not in PERMANENT_API_ERRORS:
            raise
        return False
    return True


async def repair(db: Database, sync: JetStreamSync) -> dict[str, dict[str, int]]:
    """Put every DuckDB row whose KV value is missing or different; delete KV keys DuckDB lacks;
    then empty the dead-letter table (KV now holds DuckDB's state). Rows KV can never take
    (larger than max_payload, an id that is no KV key) are counted as `skipped`."""
    result: dict[str, dict[str, int]] = {}
    for entity in ENTITY_ORDER:
        result[entity] = await _repair_bucket(db, sync, entity)
    puts, deletes = sum(r["put"] for r in result.values()), sum(r["deleted"] for r in result.values())
    cleared = await db.write(lambda uow: DeadLetterRepository(uow.cursor).clear())
    result["dead_letters"] = {"cleared": cleared}
    log.info(
        "repair: KV rewritten from DuckDB: %d keys put, %d deleted, %d dead letters cleared",
        puts,
        deletes,
        cleared,
        extra={"repair": result},
    )
    return result


async def _repair_bucket(db: Database, sync: JetStreamSync, entity: str) -> dict[str, int]:
    want, have = await _states(db, sync, entity)
    kv = sync.bucket(entity)
    max_payload = sync.connection.max_payload
    put = [k for k in want if k not in have or not _same(want[k], have[k])]
    refused = {k for k in put if kv_refusal(k, want[k], max_payload) is not None}
    extra = [k for k in have if k not in want]

    async def put_one(key: str) -> None:
        if not await _put_unless_refused(kv, key, want[key]):
            refused.add(key)

    await pipelined(put_one, [k for k in put if k not in refused])
    await pipelined(kv.delete, extra)
    counts = {"put": len(put) - len(refused), "deleted": len(extra)}
    if refused:
        counts["skipped"] = len(refused)
    return counts
