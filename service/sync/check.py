"""Compare the KV buckets with DuckDB (verify) and rewrite them from DuckDB (repair)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import msgspec
from nats.js.kv import KeyValue

from schema.common import encode
from service.model.registry import ENTITIES, ENTITY_ORDER
from service.store.database import Database
from service.store.repository import Repository
from service.sync.buckets import read_bucket
from service.sync.jetstream import JetStreamSync, pipelined

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
    in_sync: bool
    buckets: list[BucketDiff]


async def _duckdb_state(db: Database, entity: str) -> dict[str, bytes]:
    spec = ENTITIES[entity]

    def load(cur: Any) -> dict[str, bytes]:
        repo = Repository(spec, cur)
        return {r.id: encode(r) for r in repo.list_all()}

    return await db.read(load)


async def republish(db: Database, kv: KeyValue, entity: str, ids: Iterable[str]) -> int:
    """Put DuckDB's current value (the reply format: no secrets) under these keys, except
    keys with changes still in the outbox: the relay puts those, newer. Run it where no
    relay batch can land in between (Relay.paused), or no relay runs. Returns keys put."""
    wanted = set(ids)

    def load(cur: Any) -> dict[str, bytes]:
        pending = {
            row[0] for row in cur.execute("SELECT DISTINCT entity_id FROM outbox WHERE entity = ?", [entity]).fetchall()
        }
        return {r.id: encode(r) for r in Repository(ENTITIES[entity], cur).list_all() if r.id in wanted - pending}

    values = await db.read(load)
    await pipelined(lambda item: kv.put(*item), list(values.items()))
    return len(values)


def _same(a: bytes, b: bytes) -> bool:
    return a == b or msgspec.json.decode(a) == msgspec.json.decode(b)


async def verify(db: Database, sync: JetStreamSync) -> VerifyReport:
    buckets = []
    for entity in ENTITY_ORDER:
        want = await _duckdb_state(db, entity)
        have = (await read_bucket(sync.js, entity)).values
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
    return VerifyReport(all(b.missing == b.extra == b.different == 0 for b in buckets), buckets)


async def repair(db: Database, sync: JetStreamSync) -> dict[str, dict[str, int]]:
    """Put every DuckDB row whose KV value is missing or different; delete KV keys DuckDB lacks."""
    result = {}
    for entity in ENTITY_ORDER:
        want = await _duckdb_state(db, entity)
        have = (await read_bucket(sync.js, entity)).values
        kv = sync.bucket(entity)
        put = [k for k in want if k not in have or not _same(want[k], have[k])]
        extra = [k for k in have if k not in want]
        for key in put:
            await kv.put(key, want[key])
        for key in extra:
            await kv.delete(key)
        result[entity] = {"put": len(put), "deleted": len(extra)}
    puts, deletes = sum(r["put"] for r in result.values()), sum(r["deleted"] for r in result.values())
    log.info("repair: KV rewritten from DuckDB: %d keys put, %d deleted", puts, deletes, extra={"repair": result})
    return result
