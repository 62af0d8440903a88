"""Balance questions and batch ingest (`ekko.wallet_balances.*`), and the balance reports
(`ekko.reports.wallet_stats`, `ekko.reports.portfolio_history`)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from .common import Amount, Fiat, Id
from .wallet_balances import WalletBalance, WalletBalanceCreate

MAX_INGEST = 10_000
MAX_LATEST_WALLETS = 1_000
Interval = Literal["1h", "1d", "1w"]


class IngestRequest(Struct, forbid_unknown_fields=True):
    """All or nothing: one bad item refuses the whole request."""

    items: Annotated[list[WalletBalanceCreate], Meta(min_length=1, max_length=MAX_INGEST)]


class IngestReply(Struct):
    count: int
    ids: list[str]  # in the order of the items


class LatestRequest(Struct, forbid_unknown_fields=True):
    # Unset: every wallet that has a balance row.
    wallet_ids: Annotated[list[Id], Meta(max_length=MAX_LATEST_WALLETS)] | UnsetType = UNSET


class LatestReply(Struct):
    items: list[WalletBalance]  # by wallet_id; a wallet without rows is absent


class AtRequest(Struct, forbid_unknown_fields=True):
    wallet_id: Id
    at: datetime


class HistoryRequest(Struct, forbid_unknown_fields=True):
    wallet_id: Id
    interval: Interval
    # Intervals whose UTC start lies in [from aligned down to its interval, to).
    from_: datetime | UnsetType = msgspec.field(default=UNSET, name="from")
    to: datetime | UnsetType = UNSET


class HistoryPoint(Struct):
    start: datetime
    first: Amount
    last: Amount
    min: Amount
    max: Amount
    count: int
    last_fiat_value: Fiat | None


class HistoryReply(Struct):
    points: list[HistoryPoint]  # intervals without rows are left out


class PerformanceRequest(Struct, forbid_unknown_fields=True):
    wallet_id: Id
    # Rows with from <= timestamp < to.
    from_: datetime | UnsetType = msgspec.field(default=UNSET, name="from")
    to: datetime | UnsetType = UNSET


class PerformanceReply(Struct):
    """Null figures and count 0 when the range holds no rows."""

    first: Amount | None
    last: Amount | None
    min: Amount | None
    max: Amount | None
    avg: Amount | None  # rounded half-even to 18 places
    change: Amount | None  # last - first
    change_pct: Decimal | None  # 100 * change / first, 8 places; null when first is 0
    count: int


class WalletStatsRequest(Struct, forbid_unknown_fields=True):
    pass


class ChainStats(Struct):
    blockchain_symbol: str
    wallets: int
    balance: Amount  # summed over each wallet's newest balance row
    fiat_value: Fiat


class WalletStatsReply(Struct):
    total: int
    by_status: dict[str, int]
    by_chain: list[ChainStats]


class PortfolioRequest(Struct, forbid_unknown_fields=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    interval: Interval
    blockchain_symbol: str | UnsetType = UNSET


class PortfolioPoint(Struct):
    start: datetime
    fiat_value: Fiat  # summed over wallets: each one's last fiat value by the interval's end


class PortfolioReply(Struct):
    points: list[PortfolioPoint]


# subject (after the prefix) -> (request, reply): what handlers/balances.py serves and the
# JSON Schemas document.
SUBJECTS: dict[str, tuple[type[Struct], type[Struct]]] = {
    "wallet_balances.ingest": (IngestRequest, IngestReply),
    "wallet_balances.latest": (LatestRequest, LatestReply),
    "wallet_balances.at": (AtRequest, WalletBalance),
    "wallet_balances.history": (HistoryRequest, HistoryReply),
    "wallet_balances.performance": (PerformanceRequest, PerformanceReply),
    "reports.wallet_stats": (WalletStatsRequest, WalletStatsReply),
    "reports.portfolio_history": (PortfolioRequest, PortfolioReply),
}
