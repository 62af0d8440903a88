"""Migration 10 on a database at version 7 with rows: portfolio_changes is filled from the
roll-ups and wallet chains that were there, equal to the service's rebuild and to plain
Python over the rows (null fiat values, several wallets per chain, values past what a
DECIMAL(38,8) sum holds, negative values)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from service.store.balances import rebuild
from service.store.ddl import MIGRATIONS, apply_migrations, current_version
from service.store.intervals import bucket

T0 = datetime(2026, 1, 4, 23, 30)  # a Sunday: the rows span two ISO weeks
WALLETS = {"w1": "ETH", "w2": "ETH", "w3": "AVAX"}
BIG = Decimal("9" * 30 + ".99999999")
ROWS = [  # id, wallet, minutes after T0, fiat
    ("a", "w1", 0, BIG),
    ("b", "w1", 120, None),
    ("c", "w1", 60 * 30, Decimal("-0.00000001")),
    ("d", "w2", 10, BIG),
    ("e", "w2", 60 * 24 * 3, Decimal("1.5")),
    ("f", "w3", 45, Decimal("2.25")),
    ("g", "w3", 45, Decimal("3")),  # same instant as f: g is newer (larger id)
]


def database_at_7(path: Path) -> duckdb.DuckDBPyConnection:
    """Rows of up to 30 integer digits fit from version 7 on: they go in then, and the roll-ups
    and latest rows are derived from them by migration 7's own statements."""
    con = duckdb.connect(str(path))
    current_version(con)
    for number, description, sql in MIGRATIONS[:7]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, description])
    for n, (wallet, chain) in enumerate(WALLETS.items()):
        con.execute(
            "INSERT INTO wallets VALUES (?, now(), now(), 1, ?, ?, NULL, 0, 'active', ?)",
            [wallet, chain, f"0x{n}", f"{chain}:0x{n}"],
        )
    for row_id, wallet, minutes, fiat in ROWS:
        con.execute(
            "INSERT INTO wallet_balances VALUES (?, now(), now(), 1, ?, ?, 1, NULL, ?)",
            [row_id, wallet, T0 + timedelta(minutes=minutes), fiat],
        )
    v7 = MIGRATIONS[6][2]
    con.execute(v7[v7.index("INSERT INTO balance_rollups") :])
    return con


def expected() -> dict[tuple[str, str, datetime], Decimal]:
    out: dict[tuple[str, str, datetime], Decimal] = {}
    for wallet, chain in WALLETS.items():
        mine = sorted((at, row_id, fiat) for row_id, w, at, fiat in ROWS if w == wallet)
        for interval in ("1h", "1d", "1w"):
            last: dict[datetime, Decimal] = {}
            for minutes, _, fiat in mine:
                last[bucket(interval, T0 + timedelta(minutes=minutes))] = fiat or Decimal(0)
            previous = Decimal(0)
            for start in sorted(last):
                key = (chain, interval, start)
                out[key] = out.get(key, Decimal(0)) + last[start] - previous
                previous = last[start]
    return {k: v for k, v in out.items() if v}


def changes(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, datetime], Decimal]:
    rows = con.execute("SELECT blockchain_symbol, interval, start, units, fraction FROM portfolio_changes").fetchall()
    assert all(0 <= f < 10**8 for *_, f in rows)
    return {(c, i, s): Decimal(int(u) * 10**8 + int(f)).scaleb(-8) for c, i, s, u, f in rows}


def test_migration_8_fills_portfolio_changes_from_existing_rows(tmp_path: Path) -> None:
    con = database_at_7(tmp_path / "old.db")
    assert current_version(con) == 7
    assert apply_migrations(con) >= 8
    migrated = changes(con)
    assert migrated == expected()
    assert (("ETH", "1w", bucket("1w", T0)), BIG * 2) in migrated.items()  # past DECIMAL(38,8)
    rebuild(con)
    assert changes(con) == migrated
