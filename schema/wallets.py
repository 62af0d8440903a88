"""Wallets: one address on one chain. (blockchain_symbol, lower(address)) is unique."""

from decimal import Decimal
from typing import Annotated

from msgspec import Meta

from .common import Amount, CreateRequest, Name, Record, ShortText, update_struct

Symbol = Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{2,12}$")]
Address = Annotated[str, Meta(min_length=1, max_length=128)]


class Wallet(Record, kw_only=True):
    blockchain_symbol: str
    address: str
    name: str | None = None
    # Follows the wallet's newest balance row (service.usecases.balances).
    balance: Amount
    status: str = "active"


class WalletCreate(CreateRequest, kw_only=True):
    blockchain_symbol: Symbol
    address: Address
    name: Name | None = None
    balance: Amount = Decimal(0)
    status: ShortText = "active"


WalletUpdate = update_struct("WalletUpdate", WalletCreate)
