"""Point-in-time balances of a wallet: the history that reports aggregate over."""

from datetime import datetime

from .common import UNSET, CreateRequest, Id, Money, Record, UnsetType, update_struct


class WalletBalance(Record, kw_only=True):
    wallet_id: str
    timestamp: datetime
    balance: Money
    token_price: Money | None = None
    fiat_value: Money | None = None


class WalletBalanceCreate(CreateRequest, kw_only=True):
    wallet_id: Id
    balance: Money
    # Defaults to the time of the write.
    timestamp: datetime | UnsetType = UNSET
    token_price: Money | None = None
    fiat_value: Money | None = None


WalletBalanceUpdate = update_struct("WalletBalanceUpdate", WalletBalanceCreate)
