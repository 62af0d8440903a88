"""Migration 4 on a database made at version 3 with rows: 8-decimal amounts survive
exactly in the widened columns, 18-decimal ones fit afterwards, and the derived tables
are filled from the rows that were there (checked against plain Python)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from service.store.balances import rebuild
from service.store.ddl import LATEST_VERSION, MIGRATIONS, apply_migrations, current_version
from service.store.intervals import bucket

T0 = datetime(2025, 12, 31, 23, 30)
WALLET = "00000000-0000-4000-8000-000000000001"
ROWS = [  # id, minutes after T0, balance, fiat (the largest DECIMAL(24,8) and the smallest step)
    ("b1", 0, Decimal("9999999999999999.99999999"), Decimal("1.00000001")),
    ("b2", 45, Decimal("0.00000001"), None),
    ("b3", 45, Decimal("-12.5"), Decimal("7")),  # same instant as b2: b3 is newer (larger id)
    ("b4", 60 * 24 * 9, Decimal("3.33333333"), Decimal("0.00000001")),
]


def old_database(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    current_version(con)
    for number, description, sql in MIGRATIONS[:3]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, description])
    con.execute(
        "INSERT INTO wallets VALUES (?, now(), now(), 1, 'ETH', '0xabc', NULL, 9999999999999999.99999999, 'active')",
        [WALLET],
    )
    for row_id, minutes, balance, fiat in ROWS:
        con.execute(
            "INSERT INTO wallet_balances VALUES (?, now(), now(), 1, ?, ?, ?, 1.5, ?)",
            [row_id, WALLET, T0 + timedelta(minutes=minutes), balance, fiat],
        )
    return con


def test_migration_4_widens_amounts_exactly_and_derives_from_existing_rows(tmp_path: Path) -> None:
    con = old_database(tmp_path / "old.db")
    assert current_version(con) == 3
    assert apply_migrations(con) == LATEST_VERSION
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'wallet_balances'"
        ).fetchall()
    )
    assert (types["balance"], types["token_price"], types["fiat_value"]) == (
        "DECIMAL(38,18)",
        "DECIMAL(38,18)",
        "DECIMAL(38,8)",
    )
    stored = con.execute("SELECT id, balance, fiat_value FROM wallet_balances ORDER BY id").fetchall()
    assert stored == [(row_id, balance, fiat) for row_id, _, balance, fiat in ROWS]
    assert con.execute("SELECT balance FROM wallets").fetchall() == [(Decimal("9999999999999999.99999999"),)]
    # 18 decimals and 20 integer digits fit now
    big = Decimal("12345678901234567890.123456789012345678")
    con.execute("UPDATE wallet_balances SET balance = ? WHERE id = 'b1'", [big])
    assert con.execute("SELECT balance FROM wallet_balances WHERE id = 'b1'").fetchall() == [(big,)]
    con.execute("UPDATE wallet_balances SET balance = ? WHERE id = 'b1'", [ROWS[0][2]])
    assert derived(con) == expected()
    rebuild(con)  # the service's own rebuild derives the same
    assert derived(con) == expected()


def derived(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple], list[tuple]]:
    rollups = con.execute(
        "SELECT interval, start, first, last, min, max, count, last_fiat_value, last_id FROM balance_rollups"
        " ORDER BY interval, start"
    ).fetchall()
    return rollups, con.execute("SELECT wallet_id, id FROM balance_latest").fetchall()


def expected() -> tuple[list[tuple], list[tuple]]:
    ordered = sorted(ROWS, key=lambda r: (T0 + timedelta(minutes=r[1]), r[0]))
    rollups = []
    for interval in sorted(("1h", "1d", "1w")):
        groups: dict[datetime, list] = {}
        for row in ordered:
            groups.setdefault(bucket(interval, T0 + timedelta(minutes=row[1])), []).append(row)
        for start, group in sorted(groups.items()):
            amounts = [r[2] for r in group]
            rollups.append(
                (
                    interval,
                    start,
                    amounts[0],
                    amounts[-1],
                    min(amounts),
                    max(amounts),
                    len(group),
                    group[-1][3],
                    group[-1][0],
                )
            )
    return rollups, [(WALLET, ordered[-1][0])]


def test_a_derived_key_can_be_replaced_twice_in_one_transaction(tmp_path: Path) -> None:
    """A group commit refreshes one wallet's derived rows once per write: delete and insert
    of the same primary key, repeated in one transaction, must commit (DuckDB once refused
    such re-inserts under a unique index)."""
    con = old_database(tmp_path / "old.db")
    apply_migrations(con)
    con.execute("BEGIN")
    for _ in range(3):
        con.execute("DELETE FROM balance_latest WHERE wallet_id = ?", [WALLET])
        con.execute("INSERT INTO balance_latest SELECT * FROM wallet_balances WHERE id = 'b1'")
        con.execute("DELETE FROM balance_rollups WHERE wallet_id = ? AND interval = '1w'", [WALLET])
        rebuilt = "SELECT * FROM balance_rollups WHERE false"  # same columns, no rows
        con.execute(f"INSERT INTO balance_rollups {rebuilt}")
        con.execute(
            "INSERT INTO balance_rollups VALUES (?, '1w', ?, 1, 1, 1, 1, 1, NULL, ?, 'b1', ?, 'b1')",
            [WALLET, datetime(2025, 12, 29), T0, T0],
        )
    con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM balance_rollups WHERE interval = '1w'").fetchall() == [(1,)]
    assert con.execute("SELECT id FROM balance_latest").fetchall() == [("b1",)]
