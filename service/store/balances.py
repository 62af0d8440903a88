"""SQL of the balance questions and of the state derived from wallet_balances.

`balance_rollups` holds, per wallet and interval ('1h', '1d', '1w'), the first, last,
min, max, count and last fiat value of its rows; `balance_latest` each wallet's newest
row. Both are rewritten by the writer in the transaction that changes the rows
(`BalanceStore.refresh`), only for the (wallet, interval) keys the change touched, so
readers never aggregate the whole history. Order within a wallet is (timestamp, id):
rows with equal timestamps are ordered by id (docs/decisions.md, "Balances").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

import duckdb

from schema.common import Record
from schema.wallet_balances import WalletBalance
from service.model.columns import naive_utc, to_db
from service.model.registry import ENTITIES
from service.store.intervals import INTERVALS, LENGTHS, bucket
from service.store.portfolio import Key, PortfolioChanges, add_into, appended
from service.store.portfolio import rebuild as rebuild_portfolio
from service.store.repository import Repository
from service.store.rollup_sql import (
    AGGREGATES,
    INSERT_LATEST,
    INSERT_ROLLUPS,
    LATEST_TYPES,
    LISTED_TYPES,
    MERGE_LATEST,
    ORDER,
    UPDATE_LATEST,
    UPDATE_ROLLUPS,
)
from service.store.sql import Cursor, count_rows, first_row
from service.store.write_batch import TableAccess, WriteBatch, as_text

BALANCES = ENTITIES["wallet_balances"]
WALLETS = ENTITIES["wallets"]
_EXACT = Context(prec=80)  # sums of DECIMAL(38,18) need more than the default 28 digits
_HISTORY_COLUMNS = "start, first::VARCHAR, last::VARCHAR, min::VARCHAR, max::VARCHAR, count, last_fiat_value::VARCHAR"


def _columns(rows: Iterable[Sequence[Any]], types: Sequence[str]) -> list[list[Any]]:
    """Rows as one list parameter per column (decimals as text, as unnest_sql takes them)."""
    columns = zip(*rows, strict=True)
    return [as_text(c) if t.startswith("DECIMAL") else list(c) for c, t in zip(columns, types, strict=True)]


def exact_sum(column: str, scale: int) -> str:
    """Two sums that cannot overflow where sum() of a DECIMAL(38,s) would past 10^(38-s) (and
    abort a snapshot's transaction): of the integer parts, and of the fractions scaled to
    integers, both HUGEINT. `joined` puts them back together exactly."""
    return (
        f"coalesce(sum(trunc({column})::HUGEINT), 0),"
        f" coalesce(sum((({column} - trunc({column})) * {10**scale})::HUGEINT), 0)"
    )


def joined(integers: int, fractions: int, scale: int) -> Decimal:
    return _EXACT.add(Decimal(integers), Decimal(fractions).scaleb(-scale, _EXACT))


def to_row(record: WalletBalance) -> tuple[Any, ...]:
    return tuple(to_db(c, getattr(record, c.name)) for c in BALANCES.columns)


class BalanceStore(TableAccess):
    """The derived tables and the balance reads, on one cursor (the writer's, with its batch:
    statements on wallet_balances first send the rows held back for it; or a reader's)."""

    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, BALANCES.name, batch)
        self.rows = Repository(BALANCES, cursor)

    # -- the writer: derived state ------------------------------------------
    def merge(self, rows: Sequence[WalletBalance]) -> set[str]:
        """New rows only (a writer group's creates): fold them into their intervals and latest
        rows without reading the other rows. Appends into intervals and latest rows that exist
        cost two UPDATEs; a first row of an interval or of a wallet adds an INSERT. An ingest's
        rows take StagedBalances.merge instead. Returns the wallets."""
        if self.batch is not None:
            self.batch.wrote("balance_rollups")  # a refusal after this rolls the transaction back
        new = [(r.wallet_id, naive_utc(r.timestamp), r.id, r.balance, r.fiat_value) for r in rows]
        if self.batch is not None:
            self.batch.rollup_journal.rows_at(self.cur, ((row[0], row[1]) for row in new))
        diff, spans = appended(new, self._wallets({row[0] for row in new}))
        changes = PortfolioChanges(self.cur)
        add_into(diff, changes.deltas(spans), -1)
        found = set(self.cur.execute(UPDATE_ROLLUPS, _columns(new, LISTED_TYPES)).fetchall())
        hours = {bucket("1h", at) for _, at, *_ in new}
        keys = {hour: [(i, bucket(i, hour)) for i in INTERVALS] for hour in hours}
        fresh = [row for row in new if any((row[0], i, s) not in found for i, s in keys[bucket("1h", row[1])])]
        if fresh:
            self.cur.execute(INSERT_ROLLUPS, _columns(fresh, LISTED_TYPES))
        newest: dict[str, WalletBalance] = {}
        for row in rows:
            held = newest.get(row.wallet_id)
            if held is None or (row.timestamp, row.id) > (held.timestamp, held.id):
                newest[row.wallet_id] = row
        # A weekly roll-up that existed before means the wallet has a latest row to compare with.
        has_rows = {w for w, r in newest.items() if (w, "1w", bucket("1w", naive_utc(r.timestamp))) in found}
        known = [to_row(r) for w, r in newest.items() if w in has_rows]
        first = [to_row(r) for w, r in newest.items() if w not in has_rows]
        if known:
            self.cur.execute(UPDATE_LATEST, _columns(known, LATEST_TYPES))
        if first:
            self.cur.execute(MERGE_LATEST, _columns(first, LATEST_TYPES))
        add_into(diff, changes.deltas(spans), 1)
        changes.apply(diff)
        return set(newest)

    def _wallets(self, wallets: Iterable[str]) -> dict[str, tuple[str, tuple[Any, ...] | None]]:
        """Each existing wallet's chain and latest (timestamp, id, fiat value) or None."""
        if self.batch is not None:
            self.batch.flush(self.cur, WALLETS.name)  # a wallet created in this transaction too
        rows = self.cur.execute(
            "SELECT w.id, w.blockchain_symbol, l.timestamp, l.id, l.fiat_value FROM wallets w"
            " LEFT JOIN balance_latest l ON l.wallet_id = w.id WHERE w.id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(wallets)],
        ).fetchall()
        return {w: (chain, None if at is None else (at, i, fiat)) for w, chain, at, i, fiat in rows}

    def refresh(self, touched: Iterable[tuple[str, datetime]], known: dict[str, WalletBalance]) -> set[str]:
        """Recompute the roll-ups of every interval holding one of these (wallet, naive UTC time)
        pairs, and the latest row of those wallets. `known`: rows this transaction wrote, by
        id (a new latest row among them is not read back). Returns the wallets."""
        touched = set(touched)
        wallets = {wallet for wallet, _ in touched}
        if not touched:
            return wallets
        if self.batch is not None:
            self.batch.wrote("balance_rollups")  # a refusal after this rolls the transaction back
            self.batch.rollup_journal.rows_at(self.cur, touched)
        ids, times = [w for w, _ in touched], [at for _, at in touched]
        chains = self._wallets(wallets)  # a deleted wallet's changes left with it (forget_wallet)
        low_high: dict[str, tuple[datetime, datetime]] = {}
        for wallet, at in touched:
            low, high = low_high.get(wallet, (at, at))
            low_high[wallet] = (min(low, at), max(high, at))
        spans = {
            (w, i): (chains[w][0], bucket(i, low), bucket(i, high))
            for w, (low, high) in low_high.items()
            if w in chains
            for i in INTERVALS
        }
        changes = PortfolioChanges(self.cur)
        diff: dict[Key, int] = {}
        add_into(diff, changes.deltas(spans), -1)
        for interval, unit in INTERVALS.items():
            # The intervals are worked out by DuckDB: per-row Python here cost more than the SQL.
            keys = (
                f"(SELECT DISTINCT w AS wallet_id, date_trunc('{unit}', t) AS start"
                " FROM (SELECT unnest(?::VARCHAR[]) AS w, unnest(?::TIMESTAMP[]) AS t))"
            )
            low, high = bucket(interval, min(times)), bucket(interval, max(times)) + LENGTHS[interval]
            self.cur.execute(
                f"DELETE FROM balance_rollups r USING {keys} k"
                " WHERE r.interval = ? AND r.wallet_id = k.wallet_id AND r.start = k.start",
                [ids, times, interval],
            )
            self._execute(
                f"INSERT INTO balance_rollups SELECT b.wallet_id, ?, date_trunc('{unit}', b.timestamp) AS s,"
                f" {AGGREGATES} FROM wallet_balances b JOIN {keys} k"
                f" ON b.wallet_id = k.wallet_id AND date_trunc('{unit}', b.timestamp) = k.start"
                " WHERE b.timestamp >= ? AND b.timestamp < ? GROUP BY b.wallet_id, s",
                [interval, ids, times, low, high],
            )
        add_into(diff, changes.deltas(spans), 1)
        changes.apply(diff)
        self._refresh_latest(sorted(wallets), known)
        return wallets

    def move_wallet(self, wallet_id: str, source: str, target: str) -> None:
        """The wallet's chain changed: its part of portfolio_changes moves with it."""
        if self.batch is not None:
            self.batch.wrote("portfolio_changes")
        PortfolioChanges(self.cur).move(wallet_id, source, target)

    def forget_wallet(self, wallet_id: str, chain: str) -> None:
        """The wallet is deleted (its rows with it): its part of portfolio_changes, its roll-ups
        and latest row go now, so a wallet made again with its id in this transaction starts
        from nothing."""
        if self.batch is not None:
            self.batch.wrote("portfolio_changes")
        PortfolioChanges(self.cur).move(wallet_id, chain, None)
        if self.batch is not None:
            self.batch.rollup_journal.wallet(self.cur, wallet_id)
        self.cur.execute("DELETE FROM balance_rollups WHERE wallet_id = ?", [wallet_id])
        self.cur.execute("DELETE FROM balance_latest WHERE wallet_id = ?", [wallet_id])

    def _refresh_latest(self, wallets: list[str], known: dict[str, WalletBalance]) -> None:
        """Each wallet's newest row is the last row of its newest weekly roll-up: taken from
        `known`, else from the current balance_latest, else read by id."""
        newest = [
            r[0]
            for r in self.cur.execute(
                "SELECT arg_max(last_id, start) FROM balance_rollups"
                " WHERE interval = '1w' AND wallet_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY wallet_id",
                [wallets],
            ).fetchall()
        ]
        rows = [to_row(known[i]) for i in newest if i in known]
        wanted = [i for i in newest if i not in known]
        for table in ("balance_latest", "wallet_balances"):
            if wanted:
                found = self._flushed().execute(
                    f"SELECT * FROM {table} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [wanted]
                )
                rows += found.fetchall()
                wanted = sorted(set(wanted) - {r[0] for r in rows})
        self.cur.execute("DELETE FROM balance_latest WHERE wallet_id IN (SELECT unnest(?::VARCHAR[]))", [wallets])
        if rows:  # one list per column: a multi-row VALUES costs ~1 ms per row here
            self.cur.execute(INSERT_LATEST, _columns(rows, LATEST_TYPES))

    def follow_latest(self, wallets: Sequence[str], now: datetime) -> list[tuple[Any, ...]]:
        """Set wallets.balance to the newest row's balance (0 once a wallet has none left), a new
        version where it changed. Returns the changed wallets' rows, in column order."""
        columns = ", ".join(f"w.{c.name}" for c in WALLETS.columns)
        if self.batch is not None:
            self.batch.flush(self.cur, WALLETS.name)  # a wallet created in this transaction too
            self.batch.wrote(WALLETS.name)
        return self.cur.execute(
            "UPDATE wallets w SET balance = coalesce(l.balance, 0), version = w.version + 1, updated_at = ?"
            " FROM (SELECT unnest(?::VARCHAR[]) AS wallet_id) k LEFT JOIN balance_latest l USING (wallet_id)"
            f" WHERE w.id = k.wallet_id AND w.balance <> coalesce(l.balance, 0) RETURNING {columns}",
            [now, list(wallets)],
        ).fetchall()

    def has_rows(self, wallet_id: str) -> bool:
        """Asks the rows themselves: the derived tables catch up only at the end of a transaction."""
        return self._first("SELECT 1 FROM wallet_balances WHERE wallet_id = ? LIMIT 1", [wallet_id]) is not None

    # -- reads ----------------------------------------------------------------
    def latest(self, wallets: Sequence[str] | None, limit: int) -> list[Record]:
        where = "" if wallets is None else " WHERE wallet_id IN (SELECT unnest(?::VARCHAR[]))"
        params: list[Any] = [] if wallets is None else [list(wallets)]
        rows = self.cur.execute(
            f"SELECT * FROM balance_latest{where} ORDER BY wallet_id LIMIT ?", [*params, limit]
        ).fetchall()
        return [self.rows.to_record(r) for r in rows]

    def at(self, wallet_id: str, at: datetime) -> Record | None:
        """The newest row at or before `at`: it lies in the latest hour whose first row is at or
        before `at` (found in the hourly roll-ups), so only that hour's rows are read."""
        hour = first_row(
            self.cur,
            "SELECT max(start) FROM balance_rollups WHERE wallet_id = ? AND interval = '1h' AND first_at <= ?",
            [wallet_id, at],
        )
        if hour is None or hour[0] is None:
            return None
        row = self._first(
            "SELECT * FROM wallet_balances WHERE wallet_id = ? AND timestamp >= ? AND timestamp <= ?"
            " ORDER BY timestamp DESC, id DESC LIMIT 1",
            [wallet_id, hour[0], at],
        )
        return None if row is None else self.rows.to_record(row)

    def history(self, wallet_id: str, interval: str, low: datetime, high: datetime, limit: int) -> list[tuple]:
        """The roll-ups' decimals come as text (the same digits and scale): DuckDB hands a
        DECIMAL to Python ~3x slower than its text, measured on a year of daily points."""
        return self.cur.execute(
            f"SELECT {_HISTORY_COLUMNS} FROM balance_rollups WHERE wallet_id = ? AND interval = ?"
            " AND start >= ? AND start < ? ORDER BY start LIMIT ?",
            [wallet_id, interval, low, high, limit],
        ).fetchall()

    def performance(self, wallet_id: str, low: datetime, high: datetime) -> tuple | None:
        """first, last, min, max, count and the exact sum of the rows in [low, high); None without rows."""
        where = "FROM wallet_balances b WHERE b.wallet_id = ? AND b.timestamp >= ? AND b.timestamp < ?"
        row = self._first(
            f"SELECT arg_min(b.balance, {ORDER}), arg_max(b.balance, {ORDER}), min(b.balance), max(b.balance),"
            f" count(*) {where}",
            [wallet_id, low, high],
        )
        if row is None or row[4] == 0:
            return None
        try:
            total = self.cur.execute(f"SELECT sum(b.balance) {where}", [wallet_id, low, high]).fetchall()[0][0]
        except duckdb.OutOfRangeException:  # past DECIMAL(38,18): add them up exactly in Python
            total = sum(r[0] for r in self.cur.execute(f"SELECT b.balance {where}", [wallet_id, low, high]).fetchall())
        return (*row, total)

    def wallet_stats(self) -> tuple[list[tuple], list[tuple]]:
        """(status, wallets) and (chain, wallets, summed latest balance, summed latest fiat value)."""
        statuses = self.cur.execute("SELECT status, count(*) FROM wallets GROUP BY status ORDER BY status").fetchall()
        rows = self.cur.execute(
            f"SELECT w.blockchain_symbol, count(*), {exact_sum('l.balance', 18)}, {exact_sum('l.fiat_value', 8)}"
            " FROM wallets w LEFT JOIN balance_latest l ON l.wallet_id = w.id"
            " GROUP BY w.blockchain_symbol ORDER BY w.blockchain_symbol"
        ).fetchall()
        chains = [(c, n, joined(bi, bf, 18), joined(fi, ff, 8)) for c, n, bi, bf, fi, ff in rows]
        return statuses, chains

    def portfolio(
        self, interval: str, low: datetime, high: datetime, chain: str | None
    ) -> tuple[Decimal, list[tuple[datetime, Decimal]]]:
        """The summed carried-forward fiat value before `low` (aligned to `interval`) and its
        change per interval start in [low, high), from portfolio_changes."""
        bounds = (bucket("1w", low), bucket("1d", low), low)
        return PortfolioChanges(self.cur).points(interval, bounds, high, chain)


def mark_clustered(cur: Cursor, table: str = "balance_rollups") -> None:
    """Record in the table's comment that its rows are all in wallet order, as many as it has
    now (service.store.rollup_resort counts the rows added since)."""
    cur.execute(f"COMMENT ON TABLE {table} IS 'clustered rows: {count_rows(cur, table)}'")


def rebuild(cur: Cursor) -> None:
    """Recompute every derived row from wallet_balances (after a migration or a restore).
    Roll-ups are written in wallet order: DuckDB reads one wallet's intervals with a scan
    that its zone maps (min/max per row group) narrow to a few row groups only when the table
    is clustered by wallet; its ART index is not chosen for these queries."""
    cur.execute("DELETE FROM balance_rollups")
    cur.execute("DELETE FROM balance_latest")
    for interval, unit in INTERVALS.items():
        cur.execute(
            f"INSERT INTO balance_rollups SELECT b.wallet_id, ?, date_trunc('{unit}', b.timestamp) AS s,"
            f" {AGGREGATES} FROM wallet_balances b GROUP BY b.wallet_id, s ORDER BY b.wallet_id, s",
            [interval],
        )
    mark_clustered(cur)
    cur.execute(
        "INSERT INTO balance_latest SELECT b.* FROM wallet_balances b WHERE b.id IN ("
        " SELECT arg_max(last_id, start) FROM balance_rollups WHERE interval = '1w' GROUP BY wallet_id)"
    )
    rebuild_portfolio(cur)
