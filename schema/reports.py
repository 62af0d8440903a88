"""Read-only reports (`ekko.reports.*`) and text search (`ekko.search`).

Relative imports: these Structs also ship inside a client package under another name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from .alert_rules import AlertRule
from .common import Id, Money
from .wallet_balances import WalletBalance
from .wallets import Wallet
from .workflows import Workflow

# -- ekko.reports.alert_stats -------------------------------------------------


class AlertStatsRequest(Struct, forbid_unknown_fields=True):
    """Alerts whose `created_at` is in [from, to): `from` inclusive, `to` exclusive; either
    may be left out (no bound). A timestamp without an offset is UTC."""

    from_: datetime | None = field(default=None, name="from")
    to: datetime | None = None


class WalletAlertCount(Struct):
    wallet_id: str
    name: str | None
    blockchain_symbol: str
    alerts: int


class AlertStats(Struct):
    """Every figure counts the alerts in the range; `last_24h` those of them created in the
    24 hours before the request; `top_wallets` the 10 wallets with the most, ties by wallet id."""

    total: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_priority: dict[str, int]
    last_24h: int
    top_wallets: list[WalletAlertCount]


# -- ekko.reports.wallet_overview ---------------------------------------------


class WalletOverviewRequest(Struct, forbid_unknown_fields=True):
    wallet_id: Id


class WalletOverview(Struct):
    """`latest_balance`: the wallet's newest balance row by `timestamp` (null: none).
    `change_24h`/`change_7d`: the latest balance minus the balance in effect 24 hours / 7 days
    before the request (the newest row at or before that instant); null when either is unknown.
    `alert_rules`/`workflows`: those whose `condition`/`action` or step `config` contain the
    wallet's id anywhere (case-insensitive), at most 100 each, oldest first."""

    wallet: Wallet
    latest_balance: WalletBalance | None
    change_24h: Money | None
    change_7d: Money | None
    alerts_by_status: dict[str, int]
    alert_rules: list[AlertRule]
    workflows: list[Workflow]


# -- ekko.search ----------------------------------------------------------------

SearchType = Literal["wallets", "alerts", "users", "alert_rules", "workflows", "agents"]
SEARCH_MAX_LENGTH = 200


class SearchRequest(Struct, forbid_unknown_fields=True):
    """`q` is matched case-insensitively as plain text (`%` and `_` are literal characters)."""

    q: Annotated[str, Meta(min_length=1, max_length=SEARCH_MAX_LENGTH)]
    types: Annotated[list[SearchType], Meta(min_length=1, max_length=20)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class SearchHit(Struct):
    """score: 3 a field equals q, 2 a field starts with q, 1 a field contains q (the best field counts).
    title: the entity's title field, cut to 200 characters."""

    type: str
    id: str
    title: str
    score: int


class SearchReply(Struct):
    hits: list[SearchHit]
