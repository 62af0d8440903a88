"""Migration 9 on a database made at version 7 with rows: search_terms holds one row per
non-null searchable field of the rows already there (checked against plain Python), the
same rows `rebuild` makes, and a search finds them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from service.store.ddl import LATEST_VERSION, MIGRATIONS, apply_migrations, current_version
from service.store.search import rebuild, search

COMMON = "now(), now(), 1"
ROWS = {  # table -> (columns after the common ones, rows)
    "users": (
        "email, full_name, role, is_active, password_hash",
        [
            ("u1", "Ann@Example.com", None, "user", True, "$2b$12$secret-hash"),
            ("u2", "bob@example.com", "Bob ÉCLAIR", "user", True, "$2b$12$other-hash"),
        ],
    ),
    "wallets": (
        "blockchain_symbol, address, name, balance, status",
        [
            ("w1", "ETH", "0xABC", None, 1, "active"),
            ("w2", "ETH", "0xdef", "Gold Vault", 2, "active"),
        ],
    ),
    "alerts": (
        "type, message, status, priority, notifications_enabled",
        [
            ("a1", "price", "Gold " + "x" * 300, "active", "low", True),
        ],
    ),
    "agents": ("name, type, config, status", [("g1", "Straße watcher", "gold", "{}", "inactive")]),
}


def expected() -> list[tuple[str, str, str, str]]:
    """(entity, id, lower-cased field, title) per non-null searchable field, in plain Python."""
    out = []
    for uid, email, full_name, *_ in ROWS["users"][1]:
        out += [("users", uid, v.lower(), (full_name or email)[:200]) for v in (email, full_name) if v is not None]
    for wid, _, address, name, *_ in ROWS["wallets"][1]:
        out += [("wallets", wid, v.lower(), name or address) for v in (name, address) if v is not None]
    for aid, kind, message, *_ in ROWS["alerts"][1]:
        out += [("alerts", aid, v.lower(), message[:200]) for v in (message, kind)]
    for gid, name, kind, *_ in ROWS["agents"][1]:
        out += [("agents", gid, v.lower(), name) for v in (name, kind)]
    return sorted(out)


def test_migration_8_derives_search_terms_from_the_rows_already_there(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.db"))
    current_version(con)
    for number, description, sql in MIGRATIONS[:7]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, description])
    for table, (columns, rows) in ROWS.items():
        for row_id, *values in rows:
            marks = ", ".join("?" for _ in values)
            con.execute(
                f"INSERT INTO {table} (id, created_at, updated_at, version, {columns}) VALUES (?, {COMMON}, {marks})",
                [row_id, *values],
            )
    assert current_version(con) == 7

    assert apply_migrations(con) == LATEST_VERSION
    migrated = sorted(con.execute("SELECT entity, id, text, grams, title FROM search_terms").fetchall())
    assert [row[:3] + row[4:] for row in migrated] == expected()
    rebuild(con)
    assert sorted(con.execute("SELECT entity, id, text, grams, title FROM search_terms").fetchall()) == migrated
    hits = search(con.cursor(), "GOLD", ["wallets", "alerts", "users", "alert_rules", "workflows", "agents"], 10)
    assert [(h.type, h.id, h.score) for h in hits] == [("agents", "g1", 3), ("wallets", "w2", 2), ("alerts", "a1", 2)]
    assert search(con.cursor(), "secret", ["users"], 10) == []
