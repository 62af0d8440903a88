"""`portfolio_changes`: per chain and interval, the change of the summed carried-forward fiat
value, so portfolio_history reads a few hundred rows whatever the number of balance rows.

A wallet's value at the end of an interval is the last fiat value of its latest roll-up of
that size at or before it (null as 0). Each roll-up r adds `v(r) - v(previous roll-up of the
wallet)` at r.start; the portfolio at the end of interval i is the sum of changes with start
<= i (the wallet terms telescope). Values are exact: a change is kept as `units` (floor, a
HUGEINT) and `fraction` (0 <= fraction < 10^8, the eighth decimals), because a sum of
DECIMAL(38,8) values overflows DECIMAL(38,8).

The writer keeps the table in the transaction that changes the roll-ups: it reads the changes
of the touched roll-ups (and of the next roll-up of each wallet, whose previous value may
move) before and after, and adds the difference (`deltas`, `apply`); appends in time order
skip the reads (`service.store.balances.BalanceStore.merge` for a group's creates,
`service.store.balance_ingest.StagedBalances` in SQL for an ingest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.store.ddl import PORTFOLIO_FILL
from service.store.intervals import INTERVALS, bucket
from service.store.sql import Cursor

SCALE = 10**8  # fiat values have 8 decimals
Key = tuple[str, str, datetime]  # (blockchain_symbol, interval, start)
# Open bounds of a wallet's whole history (naive UTC).
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31)

# A roll-up's last fiat value (null as 0) split into whole units and scaled fraction, both
# carrying the value's sign: units * 10^8 + fraction is the value times 10^8, exactly.
_SPLIT = (
    "trunc(coalesce(r.last_fiat_value, 0))::HUGEINT AS u,"
    " ((coalesce(r.last_fiat_value, 0) - trunc(coalesce(r.last_fiat_value, 0))) * 100000000)::BIGINT AS f"
)
_WINDOW = "WINDOW w AS (PARTITION BY wallet_id, interval ORDER BY start)"
# Per (wallet, interval) given with a chain and a range [lo, hi] of roll-up starts: the change
# of every roll-up in the range and of the first one after it, summed per chain and start.
_DELTAS = f"""
SELECT chain, interval, start, sum(du), sum(df) FROM (
    SELECT chain, interval, start, lo, hi, u - coalesce(lag(u) OVER w, 0) AS du,
        f - coalesce(lag(f) OVER w, 0) AS df, lag(start) OVER w AS before
    FROM (SELECT k.chain, r.wallet_id, r.interval, r.start, k.lo, k.hi, {_SPLIT}
        FROM balance_rollups r JOIN (SELECT unnest(?::VARCHAR[]) AS wallet_id, unnest(?::VARCHAR[]) AS chain,
            unnest(?::VARCHAR[]) AS interval, unnest(?::TIMESTAMP[]) AS lo, unnest(?::TIMESTAMP[]) AS hi) k
        ON r.wallet_id = k.wallet_id AND r.interval = k.interval)
    {_WINDOW}
) WHERE start >= lo AND (start <= hi OR coalesce(before <= hi, true)) GROUP BY chain, interval, start
"""
# Differences, normalized (0 <= fraction < 10^8), added to the rows; the keys that became zero
# come back (and are deleted: the table holds no zero rows, as a rebuild makes none).
_ADD = """
INSERT INTO portfolio_changes AS p SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::TIMESTAMP[]),
    unnest(?::HUGEINT[]), unnest(?::BIGINT[])
ON CONFLICT (blockchain_symbol, interval, start) DO UPDATE SET
    units = p.units + excluded.units + CASE WHEN p.fraction + excluded.fraction >= 100000000 THEN 1 ELSE 0 END,
    fraction = (p.fraction + excluded.fraction) % 100000000
RETURNING blockchain_symbol, interval, start, units = 0 AND fraction = 0
"""
_DELETE = (
    "DELETE FROM portfolio_changes p USING (SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS i,"
    " unnest(?::TIMESTAMP[]) AS s) k WHERE p.blockchain_symbol = k.c AND p.interval = k.i AND p.start = k.s"
)


def scaled(value: Decimal | None) -> int:
    """A fiat value (null as 0) times 10^8, exactly."""
    return 0 if value is None else int(value.scaleb(8))


def joined_scaled(units: int, fraction: int) -> Decimal:
    return Decimal(units * SCALE + fraction).scaleb(-8)


def add_into(diff: dict[Key, int], rows: Iterable[tuple[Any, ...]], sign: int) -> None:
    """Add `sign` times each (chain, interval, start, units, fraction) row into `diff`."""
    for chain, interval, start, units, fraction in rows:
        diff[(chain, interval, start)] = diff.get((chain, interval, start), 0) + sign * (units * SCALE + fraction)


def appended(
    new: list[tuple[Any, ...]], wallets: Mapping[str, tuple[str, tuple[Any, ...] | None]]
) -> tuple[dict[Key, int], dict[tuple[str, str], tuple[str, datetime, datetime]]]:
    """New rows (wallet, naive time, id, balance, fiat), with each wallet's chain and latest
    (timestamp, id, fiat) before them. A wallet whose rows all follow its latest row only
    extends its last roll-ups: its differences come from that row alone, here. Otherwise the
    (wallet, interval) spans whose changes are read before and after (`deltas`)."""
    by_wallet: dict[str, list[tuple[Any, ...]]] = {}
    for row in new:
        by_wallet.setdefault(row[0], []).append(row)
    diff: dict[Key, int] = {}
    spans: dict[tuple[str, str], tuple[str, datetime, datetime]] = {}
    for wallet, (chain, latest) in wallets.items():
        rows = sorted(by_wallet[wallet], key=lambda r: (r[1], r[2]))
        if follows((rows[0][1], rows[0][2]), latest):
            _extend(diff, chain, 0 if latest is None else scaled(latest[2]), rows)
        else:
            spans.update(history_spans(wallet, chain, rows[0][1], rows[-1][1]))
    return diff, spans


def follows(first: tuple[datetime, str], latest: Sequence[Any] | None) -> bool:
    """New rows whose first (timestamp, id) is `first` all come after the wallet's latest row,
    (timestamp, id, ...) or None when it has none: they only extend its last roll-ups."""
    return latest is None or first > (latest[0], latest[1])


def history_spans(
    wallet: str, chain: str, first_at: datetime, last_at: datetime
) -> dict[tuple[str, str], tuple[str, datetime, datetime]]:
    """New rows from first_at to last_at inside a wallet's history: per interval, the span of
    roll-up starts whose changes are read before and after (`PortfolioChanges.deltas`)."""
    return {(wallet, i): (chain, bucket(i, first_at), bucket(i, last_at)) for i in INTERVALS}


def _extend(diff: dict[Key, int], chain: str, previous: int, rows: list[tuple[Any, ...]]) -> None:
    """Differences of rows (in order) that all follow the wallet's latest row, whose fiat value
    (times 10^8) is `previous`: at each interval they reach, the interval's last value minus
    the one before it."""
    hours: dict[datetime, int] = {}
    for _, at, _, _, fiat in rows:
        hours[at.replace(minute=0, second=0, microsecond=0)] = scaled(fiat)  # the last row wins
    days = {bucket("1d", hour): value for hour, value in hours.items()}
    weeks = {bucket("1w", day): value for day, value in days.items()}
    for interval, values in (("1h", hours), ("1d", days), ("1w", weeks)):
        value = previous
        for start, last in values.items():
            diff[(chain, interval, start)] = diff.get((chain, interval, start), 0) + last - value
            value = last


class PortfolioChanges:
    """The writer's maintenance of portfolio_changes, and the report's read of it."""

    def __init__(self, cursor: Cursor) -> None:
        self.cur = cursor

    def deltas(self, spans: Mapping[tuple[str, str], tuple[str, datetime, datetime]]) -> list[tuple[Any, ...]]:
        """(wallet, interval) -> (chain, lo, hi): the changes of the roll-ups from lo to hi and
        of the wallet's next roll-up after hi, as rows for `add_into`."""
        if not spans:
            return []
        rows = [(wallet, chain, interval, lo, hi) for (wallet, interval), (chain, lo, hi) in spans.items()]
        return self.cur.execute(_DELTAS, [list(column) for column in zip(*rows, strict=True)]).fetchall()

    def apply(self, diff: Mapping[Key, int]) -> None:
        """Add each non-zero difference (times 10^8) to its chain's row."""
        keys = [k for k, v in diff.items() if v]
        if not keys:
            return
        # divmod floors: 0 <= fraction < 10^8; units as text (a HUGEINT may not fit a BIGINT)
        rows = [(*key, str(diff[key] // SCALE), diff[key] % SCALE) for key in keys]
        returned = self.cur.execute(_ADD, [list(column) for column in zip(*rows, strict=True)]).fetchall()
        zero = [(c, i, s) for c, i, s, is_zero in returned if is_zero]
        if zero:
            self.cur.execute(_DELETE, [list(column) for column in zip(*zero, strict=True)])

    def move(self, wallet_id: str, source: str | None, target: str | None) -> None:
        """Take a wallet's whole contribution from chain `source` and give it to `target`
        (None: nobody), as its chain changes or it is deleted."""
        rows = self.deltas({(wallet_id, i): ("", FIRST, LAST) for i in INTERVALS})
        diff: dict[Key, int] = {}
        for chain, sign in ((source, -1), (target, 1)):
            if chain is not None:
                add_into(diff, [(chain, *row[1:]) for row in rows], sign)
        self.apply(diff)

    # -- reads ----------------------------------------------------------------
    def points(
        self, interval: str, bounds: tuple[datetime, datetime, datetime], high: datetime, chain: str | None
    ) -> tuple[Decimal, list[tuple[datetime, Decimal]]]:
        """The value at the start of `low` and the change per start in [low, high) of `interval`.
        bounds = (week of low, day of low, low): the opening value sums weekly changes before the
        week, daily ones before the day, hourly ones before low, so it reads a few hundred rows."""
        week, day, low = bounds
        where = "" if chain is None else " AND blockchain_symbol = ?"
        by_chain = [] if chain is None else [chain]
        rows = self.cur.execute(
            "SELECT NULL::TIMESTAMP AS s, sum(units), sum(fraction) FROM portfolio_changes"
            " WHERE ((interval = '1w' AND start < ?) OR (interval = '1d' AND start >= ? AND start < ?)"
            f" OR (interval = '1h' AND start >= ? AND start < ?)){where}"
            " UNION ALL SELECT start, sum(units), sum(fraction) FROM portfolio_changes"
            f" WHERE interval = ? AND start >= ? AND start < ?{where} GROUP BY start ORDER BY s NULLS FIRST",
            [week, week, day, day, low, *by_chain, interval, low, high, *by_chain],
        ).fetchall()
        opening = joined_scaled(int(rows[0][1] or 0), int(rows[0][2] or 0))
        return opening, [(s, joined_scaled(int(u), int(f))) for s, u, f in rows[1:]]


def rebuild(cur: Cursor) -> None:
    cur.execute("DELETE FROM portfolio_changes")
    cur.execute(PORTFOLIO_FILL)
