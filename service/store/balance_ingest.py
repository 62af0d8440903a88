"""The derived state of an ingest: thousands of new balance rows, staged with what the
writer needs of them alone (their roll-ups, each wallet's newest and first row) in tables of
the scratch database, built on a pool thread before the write queues (`BalanceBatch`); the
writer then folds them into the roll-ups, latest rows and portfolio changes with a few
statements that read those tables, with no Python value per row (docs/decisions.md 39, 45).
The result equals what `BalanceStore.merge` makes of the same rows, which tests hold against
a rebuild from every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.model.registry import ENTITIES
from service.store.portfolio import Key, PortfolioChanges, add_into, follows, history_spans
from service.store.repository import stage_json_sql
from service.store.rollup_sql import BALANCES, ROLLUP_NAMES, folded_select, merge_latest, upsert_rollups
from service.store.scratch import drop, scratch_tables
from service.store.sql import Cursor, quote
from service.store.write_batch import TableAccess, WriteBatch

WALLETS = ENTITIES["wallets"]
# Per wallet of the new rows: its chain, its latest row before them (null: none) and the
# first and last of the new rows, to tell appends from rows that land inside its history.
_WALLETS = """
SELECT w.id, w.blockchain_symbol, l.timestamp, l.id, n.first_at, n.first_id, n.timestamp
FROM {wallets} n JOIN wallets w ON w.id = n.wallet_id LEFT JOIN balance_latest l ON l.wallet_id = w.id
"""
# Per wallet of the new rows: the newest (balance_latest's columns first), and when and which
# the first one is.
_NEWEST = (
    f"SELECT {', '.join(quote(c.name) for c in BALANCES.columns)}, min(timestamp) OVER w AS first_at,"
    " arg_min(id, (timestamp, id)) OVER w AS first_id FROM {rows} WINDOW w AS (PARTITION BY wallet_id)"
    " QUALIFY row_number() OVER (PARTITION BY wallet_id ORDER BY timestamp DESC, id DESC) = 1"
)
# A fiat value (null as 0) as units and eighth decimals, as portfolio_changes keeps them.
_SPLIT = "trunc(coalesce({v}, 0))::HUGEINT, ((coalesce({v}, 0) - trunc(coalesce({v}, 0))) * 100000000)::BIGINT"
# Per (wallet, interval, start) of the new rows' roll-ups: the last fiat value split, and its
# step from the wallet's previous new interval (null for its first: the step from its latest
# stored row is the writer's to take, _APPENDED).
_STEPS = f"""
SELECT wallet_id, interval, start, u, f, u - lag(u) OVER w AS du, f - lag(f) OVER w AS df
FROM (SELECT wallet_id, interval, start, {_SPLIT.format(v="last_fiat_value")} FROM {{folded}})
    k(wallet_id, interval, start, u, f)
WINDOW w AS (PARTITION BY wallet_id, interval ORDER BY start)
"""
# For wallets whose new rows all follow their latest row: each interval the rows reach
# changes the portfolio by its last fiat value minus the one before it (the wallet's previous
# interval's, or its latest row's for the first), summed per chain. Read before the latest
# rows move. portfolio._extend does the same in Python for a group's creates.
_APPENDED = f"""
SELECT a.chain, s.interval, s.start, sum(coalesce(s.du, s.u - a.u)), sum(coalesce(s.df, s.f - a.f))
FROM {{steps}} s JOIN (SELECT a.wallet_id, a.chain, {_SPLIT.format(v="l.fiat_value")}
    FROM (SELECT unnest(?::VARCHAR[]) AS wallet_id, unnest(?::VARCHAR[]) AS chain) a
    LEFT JOIN balance_latest l USING (wallet_id)) a(wallet_id, chain, u, f) USING (wallet_id)
GROUP BY ALL
"""


@dataclass(frozen=True)
class BalanceBatch:
    """An ingest's new rows in the scratch database (qualified table names): the rows as
    stored, their roll-ups (folded_select), the portfolio steps between those (_STEPS) and
    per wallet its newest and first row (_NEWEST).
    Each depends on the new rows alone, so a pool thread makes them while the writer commits
    the write before; the writer only merges them with what is stored."""

    rows: str
    folded: str
    steps: str
    wallets: str

    @classmethod
    def stage(cls, cur: Cursor, records: bytes) -> BalanceBatch:
        """From the JSON array of the new records (as `encode` writes them)."""
        batch = cls(*scratch_tables("balance_rows", "balance_folded", "balance_steps", "balance_wallets"))
        try:
            cur.execute(stage_json_sql(BALANCES, batch.rows), [records.decode()])
            folded = f"({folded_select(f'{batch.rows} b')}) k(wallet_id, interval, start, {ROLLUP_NAMES})"
            cur.execute(f"CREATE TABLE {batch.folded} AS SELECT * FROM {folded}")
            cur.execute(f"CREATE TABLE {batch.steps} AS {_STEPS.format(folded=batch.folded)}")
            cur.execute(f"CREATE TABLE {batch.wallets} AS {_NEWEST.format(rows=batch.rows)}")
        except BaseException:
            batch.drop(cur)
            raise
        return batch

    def drop(self, cur: Cursor) -> None:
        drop(cur, (self.rows, self.folded, self.steps, self.wallets))


class StagedBalances(TableAccess):
    """The writer's merge of a staged batch of new rows into the derived tables."""

    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, "balance_rollups", batch)

    def merge(self, staged: BalanceBatch) -> set[str]:
        """Fold the rows of `staged` (already in wallet_balances) into the derived tables.
        Returns their wallets."""
        if self.batch is not None:
            self.batch.wrote("balance_rollups")  # a refusal after this rolls the transaction back
            self.batch.flush(self.cur, WALLETS.name)  # a wallet created in this transaction too
        wallets = self.cur.execute(_WALLETS.format(wallets=staged.wallets)).fetchall()
        appends: list[tuple[str, str]] = []
        spans: dict[tuple[str, str], tuple[str, datetime, datetime]] = {}
        for wallet, chain, latest_at, latest_id, first_at, first_id, last_at in wallets:
            if follows((first_at, first_id), None if latest_at is None else (latest_at, latest_id)):
                appends.append((wallet, chain))
            else:
                spans.update(history_spans(wallet, chain, first_at, last_at))
        changes = PortfolioChanges(self.cur)
        diff: dict[Key, int] = {}
        add_into(diff, changes.deltas(spans), -1)
        if appends:
            rows = self.cur.execute(_APPENDED.format(steps=staged.steps), [list(c) for c in zip(*appends, strict=True)])
            add_into(diff, rows.fetchall(), 1)
        if self.batch is not None:
            self.batch.rollup_journal.keys_of(self.cur, staged.folded)
        self.cur.execute(upsert_rollups(staged.folded))
        self.cur.execute(merge_latest(staged.wallets))
        add_into(diff, changes.deltas(spans), 1)
        changes.apply(diff)
        return {row[0] for row in wallets}
