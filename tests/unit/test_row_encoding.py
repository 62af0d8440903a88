"""A get that misses the cache, and a list page, encode the DuckDB rows straight to bytes
(encode_row); the bytes must be exactly those of the record (what the cache and the KV bucket
hold, and what list replies held before)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import msgspec
import pytest

from schema.common import ListRequest, encode
from service.model.registry import ENTITIES, EntitySpec
from service.model.values import normalize
from service.store.balance_ingest import BalanceBatch
from service.store.ddl import apply_migrations
from service.store.listing import build_query, plan_list
from service.store.repository import Repository
from service.store.scratch import ATTACH, SCRATCH
from service.usecases import listing
from service.usecases.listing import JOIN_PARENTS_UP_TO, ParentSizes, _read
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
    assert repo.get_many_encoded([entity_id]).get(entity_id) == encode(record)
    assert b"secret" not in (repo.get_many_encoded([entity_id]).get(entity_id) or b"")
    assert repo.get_many_encoded([str(uuid.UUID(int=99))]) == {}


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
    assert repo.get_many_encoded([entity_id]).get(entity_id) == encode(record)


def random_balance(rng: random.Random, n: int) -> dict[str, Any]:
    """Values at the edges of DECIMAL(38,18)/(38,8) and of TIMESTAMP, nulls, and ordinary ones."""

    def amount(scale: int) -> Decimal | None:
        kind = rng.randrange(6)
        if kind == 0:
            return None
        digits = 20 if kind == 1 else rng.randrange(1, 20)
        places = scale if kind in (1, 2) else rng.randrange(scale + 1)
        sign = rng.choice(["", "-"])
        return Decimal(f"{sign}{rng.randrange(10**digits)}.{rng.randrange(10**places):0{places}d}" if places else "0")

    edges = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), T0]
    moment = rng.choice(edges) if rng.random() < 0.2 else T0 + timedelta(seconds=rng.randrange(-(10**9), 10**9))
    moment = moment.replace(microsecond=rng.choice([0, 1, 120000, 999999, moment.microsecond]))
    return {
        "wallet_id": str(uuid.UUID(int=7)),
        "timestamp": moment,
        "balance": amount(18) or Decimal(0),
        "token_price": amount(18),
        "fiat_value": amount(8),
    }


def test_list_pages_encode_as_their_records_do(con: duckdb.DuckDBPyConnection) -> None:
    """Repository.list_encoded (the list reply's items) against encode(record) of Repository.list,
    row for row, over random rows of every entity and balances at the edges of their types."""
    rng = random.Random(14)
    for spec in ENTITIES.values():
        for n in range(1, 40):
            stored(con, spec, n, **(random_balance(rng, n) if spec.name == "wallet_balances" else {}))
        for sort in (["-created_at"], ["id"], ["-timestamp"] if spec.name == "wallet_balances" else ["-updated_at"]):
            query = build_query(spec, ListRequest(sort=sort, limit=1000))
            records = Repository(spec, con).list(query)
            page = Repository(spec, con).list_encoded(query)
            assert len(records) == 39
            assert page.items == [encode(record) for record in records]
            assert [page.record(i) for i in range(len(records))] == records


def test_records_inserted_from_their_json_array_read_back_as_they_were(con: duckdb.DuckDBPyConnection) -> None:
    """An ingest's rows: DuckDB reads the records from their JSON array into a scratch table
    (BalanceBatch.stage), the writer inserts them from there (Repository.insert_staged); both
    tables hold exactly the records, at the edges of their types."""
    spec = ENTITIES["wallet_balances"]
    rng = random.Random(38)
    records = []
    for n in range(1, 400):
        values = {**random_balance(rng, n), "id": str(uuid.UUID(int=n)), "created_at": T0, "updated_at": T0}
        typed = msgspec.structs.asdict(msgspec.convert({**values, "version": 1}, spec.record, strict=False))
        records.append(spec.record(**normalize(spec, typed)))
    con.execute(ATTACH)
    staged = BalanceBatch.stage(con, encode(records))
    repo = Repository(spec, con)
    repo.insert_staged(staged.rows, [r.id for r in records])
    query = build_query(spec, ListRequest(sort=["id"], limit=1000))
    assert repo.list(query) == records
    names = ", ".join(f'"{c.name}"' for c in spec.columns)
    assert (
        con.execute(f"SELECT {names} FROM {staged.rows} ORDER BY id").fetchall()
        == con.execute(f"SELECT {names} FROM wallet_balances ORDER BY id").fetchall()
    )
    staged.drop(con)
    assert con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE database_name = '{SCRATCH}'").fetchone() == (0,)


@pytest.mark.parametrize("join_up_to", [0, JOIN_PARENTS_UP_TO], ids=["parents by id", "parents joined"])
def test_pages_with_includes_splice_the_bytes_that_encoding_each_item_gives(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch, join_up_to: int
) -> None:
    """Whole records with their parents are spliced from the rows' reply bytes, the parents
    read by id after the page or joined into its statement (decision 56); selecting every
    field builds each item as an object instead. All give the same bytes, in the same order,
    parents missing or null included."""
    monkeypatch.setattr(listing, "PARENT_SIZES", ParentSizes(join_up_to))  # its own counts, none cached
    wallets, alerts = ENTITIES["wallets"], ENTITIES["alerts"]
    for n in range(1, 6):
        stored(con, wallets, n)
    for n in range(1, 30):  # wallet 10,000 + n % 6: 10,000 does not exist; every 7th alert has none
        stored(con, alerts, n, related_wallet_id=None if n % 7 == 0 else str(uuid.UUID(int=10_000 + n % 6)))
    # ties and nulls in the sort keys: five creation times, three priorities, an icon on two thirds
    con.execute(
        "UPDATE alerts SET created_at = created_at + to_seconds(version % 5),"
        " priority = ['low', 'medium', 'high'][version % 3 + 1], icon = CASE WHEN version % 3 = 0 THEN NULL"
        " ELSE 'i' || (version % 4) END"
    )
    every = list(alerts.record.__struct_fields__)
    shapes: list[dict[str, Any]] = [
        {},
        {"sort": ["-created_at"]},
        {"count": True},
        {"sort": ["-priority", "type"]},
        {"sort": ["icon", "-created_at"]},
        {"sort": ["-icon"]},
        {"filters": {"related_wallet_id": str(uuid.UUID(int=10_002))}},  # the index lookup's shape
    ]
    for shape in shapes:
        for limit in (4, 100):
            request = {"include": ["wallet"], "limit": limit, **shape}
            whole = _read(alerts, plan_list(alerts, ListRequest(**request)), None, con)
            built = _read(alerts, plan_list(alerts, ListRequest(**request, select=every)), None, con)
            assert whole.items == built.items, shape
            assert whole.found == built.found
            assert [whole.record(i) for i in range(whole.found)] == [built.record(i) for i in range(built.found)]
    whole = _read(alerts, plan_list(alerts, ListRequest(include=["wallet"], limit=100)), None, con)
    assert len(whole.items) == 29
    nulls = [json.loads(item)["wallet"] for item in whole.items]
    assert nulls.count(None) == 4 + 4  # no wallet (n = 7, 14, 21, 28) and the missing one (n = 6, 12, 18, 24)
