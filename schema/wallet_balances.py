"""Point-in-time balances of a wallet: the history that reports aggregate over."""

from datetime import datetime

from .common import UNSET, Amount, CreateRequest, Fiat, Id, Record, UnsetType, update_struct


class WalletBalance(Record, kw_only=True):
    wallet_id: str
    timestamp: datetime
    balance: Amount
    token_price: Amount | None = None
    fiat_value: Fiat | None = None


class WalletBalanceCreate(CreateRequest, kw_only=True):
    wallet_id: Id
    balance: Amount
    # Defaults to the time of the write.
    timestamp: datetime | UnsetType = UNSET
    token_price: Amount | None = None
    fiat_value: Fiat | None = None


WalletBalanceUpdate = update_struct("WalletBalanceUpdate", WalletBalanceCreate)
