"""A get that misses the cache encodes the DuckDB row straight to bytes (encode_row); the
bytes must be exactly those of the record (what the cache and the KV bucket hold)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import msgspec
import pytest

from schema.common import encode
from service.model.registry import ENTITIES, EntitySpec
from service.model.values import normalize
from service.store.ddl import apply_migrations
from service.store.repository import Repository
from tests.factories import payload_of

T0 = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(":memory:") as connection:  # values, not storage, are under test
        apply_migrations(connection)
        yield connection


def stored(con: duckdb.DuckDBPyConnection, spec: EntitySpec, n: int, **fields: Any) -> Repository:
    values = {**payload_of(spec.name, n), **fields}
    for fk in spec.foreign_keys:
        values.setdefault(fk.field, str(uuid.UUID(int=n)))
    values.update(id=str(uuid.UUID(int=10_000 + n)), created_at=T0, updated_at=T0, version=n)
    typed = msgspec.structs.asdict(msgspec.convert(values, spec.record, strict=False))
    repo = Repository(spec, con)
    repo.insert(spec.record(**normalize(spec, typed)), dict.fromkeys(spec.secret_columns, "secret"))
    return repo


@pytest.mark.parametrize("spec", ENTITIES.values(), ids=list(ENTITIES))
def test_every_entitys_row_encodes_to_its_records_bytes(con: duckdb.DuckDBPyConnection, spec: EntitySpec) -> None:
    repo = stored(con, spec, 1)
    entity_id = str(uuid.UUID(int=10_001))
    record = repo.get(entity_id)
    assert record is not None
    assert repo.get_encoded(entity_id) == encode(record)
    assert b"secret" not in (repo.get_encoded(entity_id) or b"")
    assert repo.get_encoded(str(uuid.UUID(int=99))) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"balance": "0", "token_price": None, "fiat_value": None},
        {"balance": "0.00000001", "token_price": "-0.00000001", "fiat_value": "9999999999999999.99999999"},
        {"balance": "-9999999999999999.99999999", "token_price": "1E+3", "fiat_value": "1e-8"},
        {"timestamp": datetime(1, 1, 1, tzinfo=UTC), "balance": "5"},
        {"timestamp": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "balance": "5"},
    ],
)
def test_edge_values_encode_as_the_record_does(con: duckdb.DuckDBPyConnection, fields: dict[str, Any]) -> None:
    spec = ENTITIES["wallet_balances"]
    repo = stored(con, spec, 2, **{k: Decimal(v) if isinstance(v, str) else v for k, v in fields.items()})
    entity_id = str(uuid.UUID(int=10_002))
    record = repo.get(entity_id)
    assert record is not None
    assert repo.get_encoded(entity_id) == encode(record)
