"""What differs per entity: small, explicit hooks the generic CRUD path calls.

`prepare` runs before the write transaction (slow work such as hashing);
`check` runs inside it on the complete record (pure, fast).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Executor
from typing import Any

import bcrypt
import msgspec

from schema.common import Record
from schema.wallets import Wallet
from service.model.addresses import address_problem
from service.model.columns import utc_now
from service.model.errors import invalid


class Rules:
    """No extra rules. Returns (record field values, secret column values)."""

    async def prepare(self, values: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.clean(values), {}

    def clean(self, values: dict[str, Any]) -> dict[str, Any]:
        """Tidy sent values (trim, upper-case); synchronous so the migration applies the same rules."""
        return values

    def check(self, record: Record) -> None:
        return None

    def check_secrets(self, secrets: dict[str, Any]) -> None:
        """Secret column values from elsewhere (the migration): refuse ones that can never work."""
        return


class UserRules(Rules):
    def __init__(self, bcrypt_rounds: int = 12, bcrypt_pool: Executor | None = None) -> None:
        self.rounds = bcrypt_rounds
        self.pool = bcrypt_pool  # the service's bounded bcrypt pool (None: asyncio's default)

    async def prepare(self, values: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        values = dict(values)
        secrets = {}
        password = values.pop("password", None)
        if password is not None:
            if len(password.encode()) > 72:  # the schema counts characters; bcrypt drops bytes past 72
                raise invalid("password", "must be at most 72 bytes in UTF-8")
            loop = asyncio.get_running_loop()
            secrets["password_hash"] = await loop.run_in_executor(self.pool, hash_password, password, self.rounds)
        return self.clean(values), secrets

    def clean(self, values: dict[str, Any]) -> dict[str, Any]:
        if isinstance(values.get("email"), str):
            values = {**values, "email": values["email"].strip()}
        return values

    def check_secrets(self, secrets: dict[str, Any]) -> None:
        # A legacy hash bcrypt cannot read would migrate a user who can never log in.
        if (hashed := secrets.get("password_hash")) is not None and not BCRYPT_HASH.fullmatch(hashed):
            raise invalid("hashed_password", "is not a bcrypt hash ($2a$/$2b$/$2y$)")


class WalletRules(Rules):
    def clean(self, values: dict[str, Any]) -> dict[str, Any]:
        values = dict(values)
        if isinstance(values.get("blockchain_symbol"), str):
            values["blockchain_symbol"] = values["blockchain_symbol"].upper()
        if isinstance(values.get("address"), str):
            values["address"] = values["address"].strip()
        return values

    def check(self, record: Record) -> None:
        if not isinstance(record, Wallet):  # the registry pairs these rules with wallets only
            raise TypeError(f"wallet rules got a {type(record).__name__}")
        if problem := address_problem(record.blockchain_symbol, record.address):
            field = "blockchain_symbol" if problem.startswith("unsupported") else "address"
            raise invalid(field, problem)


class WalletBalanceRules(Rules):
    async def prepare(self, values: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        if creating and values.get("timestamp", msgspec.UNSET) is msgspec.UNSET:
            values = {**values, "timestamp": utc_now()}
        return values, {}


BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds)).decode()


def password_matches(password: str, hashed: str) -> bool:
    """bcrypt check; legacy passlib hashes ($2b$/$2a$/$2y$) verify as they are."""
    try:
        return bcrypt.checkpw(password.encode()[:72], hashed.encode())
    except ValueError:  # malformed stored hash: treat as a failed login, never as a 500
        return False


def build_rules(bcrypt_rounds: int, bcrypt_pool: Executor | None = None) -> dict[str, Rules]:
    return {
        "users": UserRules(bcrypt_rounds, bcrypt_pool),
        "wallets": WalletRules(),
        "wallet_balances": WalletBalanceRules(),
    }
