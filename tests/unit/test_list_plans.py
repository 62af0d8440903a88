"""Per-parent lists must touch that parent's rows, not the table: checked on DuckDB's own
profile (row groups scanned, index scan or not) of the SQL Repository.list runs, on
tables of up to a million rows filled in time order with the parents taking turns.
Plans, not timings: the machine's load cannot make these pass or fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from schema.common import ListRequest
from service.model.registry import ENTITIES
from service.store import ddl
from service.store.ddl import apply_migrations
from service.store.listing import build_query, encode_cursor
from service.store.repository import Repository, list_sql
from tests.history import fill_children, made_id
from tests.once import built_once

LIMIT = 100
# (table, rows, parents): 1M balances over 80 wallets (12,500 each, so page 100 exists)
TABLES = [("wallet_balances", 1_000_000, 80), ("alerts", 500_000, 40), ("workflow_executions", 500_000, 40)]
TIME_SORT = {"wallet_balances": "-timestamp", "alerts": "-created_at", "workflow_executions": "-created_at"}


def build(path: Path) -> None:
    con = duckdb.connect(str(path))
    apply_migrations(con)
    for table, rows, parents in TABLES:
        fill_children(con, table, rows, parents)
    # A parent with few rows among the many: the index's case.
    fill_children(con, "alerts", 30, 1_000_000, start=500_000)
    fill_children(con, "wallet_balances", 40, 2_000_000, start=1_000_000)  # 40 wallets of one balance each
    con.close()


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    # Two million rows take 13-30 s to make: made once per run, read by every worker.
    con = duckdb.connect(str(built_once(tmp_path_factory, "list_plans.duckdb", build)), read_only=True)
    # One thread: with two, the second grabs the next row group before the first one's rows
    # have tightened the Top-N filter, so the count would vary by one from run to run.
    con.execute("SET threads = 1")
    yield con
    con.close()


def profile(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> tuple[int, int, str]:
    """(row groups scanned, row groups in the table, scan type) of the query's table scan."""
    plan = con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()[0][1]
    scanned = re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    kind = re.search(r"Type: (\w+ Scan)", plan)
    assert scanned is not None and kind is not None, plan
    return int(scanned.group(1)), int(scanned.group(2)), kind.group(1)


def page_query(con: duckdb.DuckDBPyConnection, table: str, request: ListRequest, pages: int) -> ListRequest:
    """The request for page `pages` (1-based), walking the keyset cursor like a client."""
    spec = ENTITIES[table]
    for _ in range(pages - 1):
        query = build_query(spec, request)
        rows = Repository(spec, con).list(query)
        assert len(rows) == LIMIT
        cursor = encode_cursor(spec, request, rows[-1], query.sort)
        request = ListRequest(filters=request.filters, sort=request.sort, limit=LIMIT, cursor=cursor)
    return request


@pytest.mark.parametrize("table", [t for t, _, _ in TABLES])
@pytest.mark.parametrize("page", [1, 100])
def test_a_parents_time_ordered_page_scans_only_the_row_groups_it_lies_in(
    con: duckdb.DuckDBPyConnection, table: str, page: int
) -> None:
    spec = ENTITIES[table]
    fk = spec.foreign_keys[0].field
    parent = made_id("parent", 7)
    first = ListRequest(filters={fk: parent}, sort=[TIME_SORT[table]], limit=LIMIT)
    request = page_query(con, table, first, page)
    query = build_query(spec, request)
    rows = Repository(spec, con).list(query)
    assert len(rows) == LIMIT and {getattr(r, fk) for r in rows} == {parent}
    sql, params = list_sql(spec, query)
    scanned, total, _ = profile(con, sql, params)
    assert total >= 3, "the table must span several row groups for this test to mean anything"
    # A page of 100 rows of one of 40-80 parents spans 4,000-8,000 rows: one row group, two when it
    # straddles a boundary. A full scan reads every one.
    assert scanned <= 2, f"{table} page {page}: {scanned} of {total} row groups scanned"


def test_an_equality_filter_on_an_indexed_column_is_answered_from_the_index(con: duckdb.DuckDBPyConnection) -> None:
    """Sorted by a key the rows do not arrive in, no row group can be skipped: the ART index
    finds a small parent's rows instead (DuckDB uses it for at most max(2048, 0.1%) matches)."""
    spec = ENTITIES["alerts"]
    parent = made_id("parent", 500_000 + 11)  # one of the small parents: a single alert
    query = build_query(spec, ListRequest(filters={"related_wallet_id": parent}, limit=LIMIT))
    assert [msgspec.structs.asdict(r)["related_wallet_id"] for r in Repository(spec, con).list(query)] == [parent]
    sql, params = list_sql(spec, query)
    scanned, _, kind = profile(con, sql, params)
    assert (scanned, kind) == (0, "Index Scan")


def test_a_small_wallets_balances_in_any_other_order_come_from_the_wallet_id_index(
    con: duckdb.DuckDBPyConnection,
) -> None:
    spec = ENTITIES["wallet_balances"]
    wallet = made_id("parent", 1_000_000 + 3)
    query = build_query(spec, ListRequest(filters={"wallet_id": wallet}, sort=["-balance"], limit=LIMIT))
    assert [msgspec.structs.asdict(r)["wallet_id"] for r in Repository(spec, con).list(query)] == [wallet]
    scanned, _, kind = profile(con, *list_sql(spec, query))
    assert (scanned, kind) == (0, "Index Scan")


def test_an_old_database_gains_the_wallet_id_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = duckdb.connect(str(tmp_path / "old.db"))
    monkeypatch.setattr(ddl, "MIGRATIONS", ddl.MIGRATIONS[:3])
    assert apply_migrations(old) == 3
    fill_children(old, "wallet_balances", 1000, 10)
    monkeypatch.undo()
    assert apply_migrations(old) == ddl.LATEST_VERSION
    indexes = {
        name
        for (name,) in old.execute(
            "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'wallet_balances'"
        ).fetchall()
    }
    assert indexes == {"wallet_balances_wallet_id"}
    spec = ENTITIES["wallet_balances"]
    query = build_query(spec, ListRequest(filters={"wallet_id": made_id("parent", 4)}, sort=["balance"], limit=LIMIT))
    assert len(Repository(spec, old).list(query)) == LIMIT
    old.close()
