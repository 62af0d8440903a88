"""The derived state of an ingest: thousands of new balance rows, staged in a temporary
table of the writer's connection (`Repository.insert_encoded`), folded into the roll-ups,
latest rows and portfolio changes by a few statements that read that table, with no Python
value per row (docs/decisions.md 39). The result equals what `BalanceStore.merge` makes of
the same rows, which tests hold against a rebuild from every row.
"""

from __future__ import annotations

from datetime import datetime

from service.model.registry import ENTITIES
from service.store.portfolio import Key, PortfolioChanges, add_into, follows, history_spans
from service.store.rollup_sql import UNITS, merge_latest, upsert_rollups
from service.store.sql import Cursor, quote
from service.store.write_batch import TableAccess, WriteBatch

WALLETS = ENTITIES["wallets"]
# Per wallet of the staged rows: its chain, its latest row before them (null: none) and the
# first and last of the staged rows, to tell appends from rows that land inside its history.
_WALLETS = """
SELECT w.id, w.blockchain_symbol, l.timestamp, l.id, n.first_at, n.first_id, n.last_at
FROM (SELECT wallet_id, min(timestamp) AS first_at, arg_min(id, (timestamp, id)) AS first_id,
    max(timestamp) AS last_at FROM {staged} GROUP BY wallet_id) n
JOIN wallets w ON w.id = n.wallet_id LEFT JOIN balance_latest l ON l.wallet_id = w.id
"""
# A fiat value (null as 0) as units and eighth decimals, as portfolio_changes keeps them.
_SPLIT = "trunc(coalesce({v}, 0))::HUGEINT, ((coalesce({v}, 0) - trunc(coalesce({v}, 0))) * 100000000)::BIGINT"
# For wallets whose staged rows all follow their latest row: each interval the rows reach
# changes the portfolio by its last fiat value minus the one before it (the wallet's previous
# interval's, or its latest row's for the first), summed per chain. Read before the latest
# rows move. portfolio._extend does the same in Python for a group's creates.
_APPENDED = f"""
SELECT chain, interval, start, sum(du), sum(df) FROM (
    SELECT a.chain, k.interval, k.start, k.u - coalesce(lag(k.u) OVER w, a.u) AS du,
        k.f - coalesce(lag(k.f) OVER w, a.f) AS df
    FROM (SELECT wallet_id, interval, start, {_SPLIT.format(v="fiat")} FROM (
            SELECT b.wallet_id, u.interval, date_trunc(u.unit, b.timestamp) AS start,
                arg_max_null(b.fiat_value, (b.timestamp, b.id)) AS fiat
            FROM {{staged}} b, {UNITS} GROUP BY ALL)) k(wallet_id, interval, start, u, f)
    JOIN (SELECT a.wallet_id, a.chain, {_SPLIT.format(v="l.fiat_value")}
        FROM (SELECT unnest(?::VARCHAR[]) AS wallet_id, unnest(?::VARCHAR[]) AS chain) a
        LEFT JOIN balance_latest l USING (wallet_id)) a(wallet_id, chain, u, f) USING (wallet_id)
    WINDOW w AS (PARTITION BY k.wallet_id, k.interval ORDER BY k.start)
) GROUP BY ALL
"""


class StagedBalances(TableAccess):
    """The writer's merge of staged new rows into the derived tables."""

    def __init__(self, cursor: Cursor, batch: WriteBatch | None = None) -> None:
        super().__init__(cursor, "balance_rollups", batch)

    def merge(self, staged: str) -> set[str]:
        """Fold the rows of temporary table `staged` (already in wallet_balances) into the
        derived tables. Returns their wallets."""
        table = quote(staged)
        if self.batch is not None:
            self.batch.wrote("balance_rollups")  # a refusal after this rolls the transaction back
            self.batch.flush(self.cur, WALLETS.name)  # a wallet created in this transaction too
        wallets = self.cur.execute(_WALLETS.format(staged=table)).fetchall()
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
            rows = self.cur.execute(_APPENDED.format(staged=table), [list(c) for c in zip(*appends, strict=True)])
            add_into(diff, rows.fetchall(), 1)
        self.cur.execute(upsert_rollups(staged))
        self.cur.execute(merge_latest(staged))
        add_into(diff, changes.deltas(spans), 1)
        changes.apply(diff)
        return {row[0] for row in wallets}
