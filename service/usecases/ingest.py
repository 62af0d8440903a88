"""`ekko.wallet_balances.ingest` in bulk: thousands of balance rows checked, built,
inserted and relayed with no per-row statement, object or outbox entry beyond what they
need (docs/decisions.md, "One outbox entry per ingest").

The items are checked and turned into records in one pass on the event loop, and encoded with
one msgspec call into a JSON array. The writer then runs a few statements for all of them: one
INSERT that DuckDB feeds from that array itself, the derived state (BalanceStore.merge, as for
any create), and one outbox entry holding the same array, which the relay expands into one
KV put and one event per row, exactly as creates would have made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from msgspec import UNSET

from schema.common import FixedDecimal, encode
from schema.wallet_balances import WalletBalance, WalletBalanceCreate
from service.model.columns import DEFAULT_DECIMAL, DecimalType
from service.model.errors import Conflict, Detail, NotFound, ServiceError, invalid
from service.model.ids import new_ids
from service.model.registry import ENTITIES
from service.model.values import to_decimal, to_utc
from service.store.balance_ingest import BalanceBatch
from service.store.uow import UnitOfWork

BALANCES = ENTITIES["wallet_balances"]
WALLETS = ENTITIES["wallets"]
_CONTEXT = Context(prec=40)  # as service.model.values: DECIMAL(38,18) needs more than 28 digits


def _decimal(name: str) -> DecimalType:
    return BALANCES.column_map[name].decimal or DEFAULT_DECIMAL


AMOUNT, PRICE, FIAT = _decimal("balance"), _decimal("token_price"), _decimal("fiat_value")


def fixed(field: str, value: Any, decimal: DecimalType) -> Decimal:
    """What service.model.values.to_decimal makes of a decimal, for the common case (a finite
    Decimal already within the column's digits and scale) without its general checks; any
    other value goes through to_decimal, which refuses it or converts it the same way."""
    if type(value) is Decimal and value.is_finite() and (not value or value.adjusted() < decimal.integer_digits):
        quantized = value.quantize(decimal.quantum, context=_CONTEXT)
        if quantized == value:
            return FixedDecimal(quantized)
    return to_decimal(field, value, decimal)


@dataclass(frozen=True)
class IngestRows:
    """The checked rows of one ingest: as records (for the derived state), their ids in item
    order (the reply), the wallets they name, and all of them encoded as one JSON array: the
    rows' INSERT reads it and the outbox entry holds it (each element is the record's KV value)."""

    records: list[WalletBalance]
    ids: list[str]
    wallets: set[str]
    data: bytes
    client_ids: set[str]  # ids the caller chose: they may exist already

    @classmethod
    def of(cls, items: Sequence[WalletBalanceCreate], now: datetime) -> IngestRows:
        """Check every item as a create would (400 naming `items[i].field`) and build its record."""
        generated = iter(new_ids(len(items)))
        records: list[WalletBalance] = []
        client_ids: set[str] = set()
        prices: dict[Decimal, Decimal] = {}  # a batch repeats its token prices: each checked once
        for index, item in enumerate(items):
            try:
                if item.id is UNSET:
                    record_id = next(generated)
                else:
                    record_id = item.id.lower()
                    if record_id in client_ids:
                        raise invalid("id", "two items have the same id")
                    client_ids.add(record_id)
                at = now if item.timestamp is UNSET else to_utc("timestamp", item.timestamp)
                balance = fixed("balance", item.balance, AMOUNT)
                price = item.token_price
                if price is not None:
                    known = prices.get(price) if price.is_finite() else None  # sNaN cannot be hashed
                    price = known if known is not None else fixed("token_price", price, PRICE)
                    prices[price] = price
                fiat = None if item.fiat_value is None else fixed("fiat_value", item.fiat_value, FIAT)
            except ServiceError as exc:
                raise prefixed(exc, index) from None
            records.append(
                WalletBalance(
                    id=record_id,
                    created_at=now,
                    updated_at=now,
                    version=1,
                    wallet_id=item.wallet_id.lower(),
                    timestamp=at,
                    balance=balance,
                    token_price=price,
                    fiat_value=fiat,
                )
            )
        ids = [r.id for r in records]
        return cls(records, ids, {r.wallet_id for r in records}, encode(records), client_ids)

    def write(self, uow: UnitOfWork, staged: BalanceBatch) -> None:
        """Inside the writer's transaction: refuse the whole batch if an item points at a missing
        wallet or reuses an existing id (naming the first such item), then insert every row
        from `staged` (this batch, BalanceBatch.stage) and note them as created (one outbox
        entry)."""
        repo = uow.repo(BALANCES)
        parents = uow.repo(WALLETS)
        missing = {w for w in self.wallets if not parents.exists(w)}
        taken = {i for i in self.client_ids if repo.exists(i)}
        if missing or taken:
            self._refuse(missing, taken)
        repo.insert_staged(staged.rows, self.ids)
        uow.record_created(BALANCES, self.data, len(self.records))

    def _refuse(self, missing: set[str], taken: set[str]) -> None:
        for index, record in enumerate(self.records):
            if record.id in taken:
                error: ServiceError = Conflict(
                    f"wallet_balances {record.id} already exists", [Detail("id", "already exists")]
                )
            elif record.wallet_id in missing:
                error = NotFound(
                    f"wallet_id: wallets {record.wallet_id} does not exist",
                    [Detail("wallet_id", f"no wallets with id {record.wallet_id}")],
                )
            else:
                continue
            raise prefixed(error, index)

    def lookups(self) -> list[tuple[str, str]]:
        """What write() asks the writer's group about, fetched for the whole group at once."""
        return [(WALLETS.name, w) for w in self.wallets] + [(BALANCES.name, i) for i in self.client_ids]


def prefixed(exc: ServiceError, index: int) -> ServiceError:
    """The error of item `index`, its fields named `items[index].field`."""
    details = [Detail(f"items[{index}].{d.field}" if d.field else f"items[{index}]", d.message) for d in exc.details]
    return type(exc)(f"items[{index}]: {exc.message}", details)
