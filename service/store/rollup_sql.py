"""The statements that fold new balance rows into `balance_rollups` and `balance_latest`,
from either of the two places new rows come from: one list parameter per column (a writer
group's creates, `BalanceStore.merge`) or a staged table (an ingest, `StagedBalances`).

Order within a wallet is (timestamp, id): rows with equal timestamps are ordered by id
(docs/decisions.md, "Balances").
"""

from __future__ import annotations

from service.model.registry import ENTITIES
from service.store.intervals import INTERVALS
from service.store.sql import quote
from service.store.write_batch import unnest_sql

BALANCES = ENTITIES["wallet_balances"]
ORDER = "(b.timestamp, b.id)"
AGGREGATES = f"""arg_min(b.balance, {ORDER}), arg_max(b.balance, {ORDER}), min(b.balance), max(b.balance),
    count(*), arg_max_null(b.fiat_value, {ORDER}), min(b.timestamp), arg_min(b.id, {ORDER}),
    max(b.timestamp), arg_max(b.id, {ORDER})"""
ROLLUP_NAMES = "first, last, min, max, count, last_fiat_value, first_at, first_id, last_at, last_id"
# New rows, one list per column (decimals as text: write_batch.as_text), as table `b`.
LISTED_ROWS = (
    "(SELECT unnest(?::VARCHAR[]) AS wallet_id, unnest(?::TIMESTAMP[]) AS timestamp, unnest(?::VARCHAR[]) AS id,"
    " unnest(?::VARCHAR[])::DECIMAL(38,18) AS balance, unnest(?::VARCHAR[])::DECIMAL(38,8) AS fiat_value) b"
)
LISTED_TYPES = ("VARCHAR", "TIMESTAMP", "VARCHAR", "DECIMAL", "DECIMAL")
UNITS = "(VALUES " + ", ".join(f"('{i}', '{u}')" for i, u in INTERVALS.items()) + ") u(interval, unit)"


def folded_select(rows: str) -> str:
    """The roll-up per (wallet, interval, start) of the new rows `rows` (a FROM item aliased
    `b`), the aggregates in ROLLUP_NAMES' order."""
    return (
        f"SELECT b.wallet_id, u.interval, date_trunc(u.unit, b.timestamp) AS start, {AGGREGATES}"
        f" FROM {rows}, {UNITS} GROUP BY b.wallet_id, u.interval, start"
    )


def merged(new: str) -> str:
    """SET clauses folding roll-up `new` into `r`; both read the old values throughout."""
    earlier = f"({new}.first_at, {new}.first_id) < (r.first_at, r.first_id)"
    later = f"({new}.last_at, {new}.last_id) > (r.last_at, r.last_id)"
    return ", ".join(
        [f"{c} = CASE WHEN {earlier} THEN {new}.{c} ELSE r.{c} END" for c in ("first", "first_at", "first_id")]
        + [
            f"{c} = CASE WHEN {later} THEN {new}.{c} ELSE r.{c} END"
            for c in ("last", "last_fiat_value", "last_at", "last_id")
        ]
        + [f"min = least(r.min, {new}.min), max = greatest(r.max, {new}.max), count = r.count + {new}.count"]
    )


# The new rows folded into the intervals that have rows already; the keys it found come
# back. For a few rows this UPDATE costs about half of INSERT ... ON CONFLICT DO UPDATE in
# DuckDB 2.0 (docs/decisions.md, "Balances").
UPDATE_ROLLUPS = (
    f"UPDATE balance_rollups AS r SET {merged('k')}"
    f" FROM ({folded_select(LISTED_ROWS)}) k(wallet_id, interval, start, {ROLLUP_NAMES})"
    " WHERE r.wallet_id = k.wallet_id AND r.interval = k.interval AND r.start = k.start"
    " RETURNING r.wallet_id, r.interval, r.start"
)
# Intervals that had no rows: every new row of such a key is sent, so its roll-up is whole;
# keys that existed were merged by UPDATE_ROLLUPS already.
INSERT_ROLLUPS = f"INSERT INTO balance_rollups {folded_select(LISTED_ROWS)} ON CONFLICT DO NOTHING"


def upsert_rollups(folded: str) -> str:
    """Roll-ups of thousands of rows (an ingest's, `folded_select` made into table `folded`)
    mostly open intervals: one upsert costs less than UPDATE + INSERT."""
    return (
        f"INSERT INTO balance_rollups AS r SELECT * FROM {folded}"
        f" ON CONFLICT (wallet_id, interval, start) DO UPDATE SET {merged('excluded')}"
    )


_COLUMNS = [quote(c.name) for c in BALANCES.columns]  # balance_latest has wallet_balances' columns, in order
_NEWER = (
    " ON CONFLICT (wallet_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != quote("wallet_id"))
    + " WHERE (excluded.timestamp, excluded.id) > (balance_latest.timestamp, balance_latest.id)"
)
_LISTED_LATEST = ", ".join(unnest_sql(c.sql_type, quote(c.name)) for c in BALANCES.columns)
INSERT_LATEST = f"INSERT INTO balance_latest SELECT {_LISTED_LATEST}"
# The newest of the rows given per wallet: a wallet's latest row unless it has a newer one.
MERGE_LATEST = INSERT_LATEST + _NEWER
# A wallet known to have a latest row: replaced when the new row is newer.
UPDATE_LATEST = (
    "UPDATE balance_latest AS l SET "
    + ", ".join(f"{c} = k.{c}" for c in _COLUMNS if c != quote("wallet_id"))
    + f" FROM (SELECT {_LISTED_LATEST}) k WHERE l.wallet_id = k.wallet_id AND (k.timestamp, k.id) > (l.timestamp, l.id)"
)
LATEST_TYPES = tuple(c.sql_type for c in BALANCES.columns)


def merge_latest(newest: str) -> str:
    """Each wallet's newest new row (a row of table `newest`, which has balance_latest's
    columns first) becomes its latest row unless it has a newer one."""
    return f"INSERT INTO balance_latest SELECT {', '.join(_COLUMNS)} FROM {newest}" + _NEWER
