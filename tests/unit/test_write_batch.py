"""service.store.write_batch through the repositories, on a real DuckDB file: what the writer
holds back or answers from memory must match what the table would say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from service.model.registry import ENTITIES
from service.store.database import connect
from service.store.ddl import apply_migrations
from service.store.outbox import Change, OutboxRepository
from service.store.repository import Repository
from service.store.write_batch import WriteBatch
from tests.factories import wallet_record as wallet

WALLETS = ENTITIES["wallets"]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "ekko.db")
    apply_migrations(connection)
    yield connection
    connection.close()


def count_statements(con: duckdb.DuckDBPyConnection) -> tuple[list[str], object]:
    """A cursor stand-in that records each statement it passes on."""
    seen: list[str] = []

    class Counting:
        def execute(self, sql: str, params: object = None) -> duckdb.DuckDBPyConnection:
            seen.append(sql.split()[0])
            return con.execute(sql, params)

    return seen, Counting()


def test_prefetched_ids_are_answered_without_a_query_and_match_the_table(con: duckdb.DuckDBPyConnection) -> None:
    Repository(WALLETS, con).insert(wallet(1))
    batch = WriteBatch()
    seen, cur = count_statements(con)
    batch.prefetch(cur, [("wallets", wallet(1).id), ("wallets", wallet(2).id)])
    assert seen == ["SELECT"], "one query for all the ids of a table"
    repo = Repository(WALLETS, cur, batch)
    assert (repo.exists(wallet(1).id), repo.exists(wallet(2).id)) == (True, False)
    assert repo.exists(wallet(3).id) is False  # not prefetched: asked
    assert seen == ["SELECT", "SELECT"]


def test_inserts_and_deletes_of_the_transaction_update_what_is_known(con: duckdb.DuckDBPyConnection) -> None:
    Repository(WALLETS, con).insert(wallet(1))
    batch = WriteBatch()
    batch.prefetch(con, [("wallets", wallet(1).id), ("wallets", wallet(2).id)])
    repo = Repository(WALLETS, con, batch)
    repo.insert(wallet(2))
    repo.delete(wallet(1).id)
    assert (repo.exists(wallet(1).id), repo.exists(wallet(2).id)) == (False, True)
    fresh = Repository(WALLETS, con)
    assert (fresh.exists(wallet(1).id), fresh.exists(wallet(2).id)) == (False, True), "the table agrees"


def test_forget_and_clear_make_the_batch_ask_the_table_again(con: duckdb.DuckDBPyConnection) -> None:
    batch = WriteBatch()
    batch.prefetch(con, [("wallets", wallet(1).id)])
    Repository(WALLETS, con).insert(wallet(1))  # behind the batch's back
    assert batch.exists("wallets", wallet(1).id) is False
    batch.forget()
    assert Repository(WALLETS, con, batch).exists(wallet(1).id) is True
    batch.add("wallets", ("id",), [wallet(9).id], wallet(9).id)
    batch.clear()
    assert batch.exists("wallets", wallet(9).id) is None
    seen, cur = count_statements(con)
    batch.flush(cur)
    assert seen == [], "a rolled-back batch sends nothing"


def change(n: int) -> Change:
    return Change(f"e{n}", "wallets", "created", wallet(n).id, 1, T0, b"{}")


def test_a_group_goes_in_with_one_statement_per_table_and_its_outbox_numbers_in_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    OutboxRepository(con).add(change(0))  # numbered by the column's DEFAULT, outside a batch
    batch = WriteBatch()
    seen, cur = count_statements(con)
    repo, outbox = Repository(WALLETS, cur, batch), OutboxRepository(cur, batch)
    for n in range(1, 301):
        repo.insert(wallet(n))
        outbox.add(change(n))
    batch.flush(cur)
    assert [s for s in seen if s == "INSERT"] == ["INSERT", "INSERT"], "one bulk INSERT per table"
    OutboxRepository(con).add(change(301))
    rows = con.execute("SELECT seq, event_id FROM outbox ORDER BY seq").fetchall()
    assert rows == [(n + 1, f"e{n}") for n in range(302)], "consecutive numbers in the order changes were added"
    assert Repository(WALLETS, con).get(wallet(300).id) == wallet(300)


def test_a_unique_key_of_a_held_back_row_is_known_without_flushing(con: duckdb.DuckDBPyConnection) -> None:
    key = WALLETS.unique[0]
    batch = WriteBatch()
    seen, cur = count_statements(con)
    repo = Repository(WALLETS, cur, batch)
    repo.insert(wallet(1))
    same = {"blockchain_symbol": "eth", "address": wallet(1).address.upper().replace("0X", "0x")}
    assert repo.find_duplicate(key, same, None) == wallet(1).id
    assert repo.find_duplicate(key, same, wallet(1).id) is None
    assert seen == [], "answered from the batch: the held-back row stays held back"
    assert repo.find_duplicate(key, {**same, "address": wallet(2).address}, None) is None
    assert seen == ["SELECT"], "an unknown key is one lookup, still without a flush"
