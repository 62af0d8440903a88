"""Login by email and password. The answer never says which of the two was wrong, and its
time does not say whether the email exists:

- an unknown email is checked against a decoy hash at the cost most stored hashes have
  (not BCRYPT_ROUNDS: legacy hashes keep their own cost until their owner logs in);
- a successful login re-hashes a password stored at another cost at BCRYPT_ROUNDS, so
  the stored costs converge;
- failed logins per email are limited (service.usecases.login_limits), checked before
  any bcrypt work;
- bcrypt runs on its own small pool, so a login flood queues there and leaves the
  threads and CPU the other subjects need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Any

from schema.users import User
from service.model.errors import Unauthorized
from service.model.registry import USERS
from service.model.rules import hash_password, password_matches
from service.store.database import Database
from service.store.repository import Repository
from service.store.sql import Cursor
from service.store.uow import UnitOfWork
from service.usecases.audit import audit
from service.usecases.login_limits import LoginLimiter

log = logging.getLogger(__name__)
DECOY_REFRESH = 600.0  # seconds; the most common stored cost changes slowly (re-hashes on login)
DECOY_PASSWORD = "decoy-password"


def hash_cost(hashed: str) -> int | None:
    """The cost of a bcrypt hash ($2b$12$...), None when it is not one."""
    cost = hashed[4:6]
    return int(cost) if len(hashed) > 7 and hashed[6] == "$" and cost.isdigit() else None


def most_common_cost(cur: Cursor) -> int | None:
    row = cur.execute(
        "SELECT substr(password_hash, 5, 2) AS cost, count(*) AS n FROM users"
        " WHERE password_hash LIKE '$2_$__$%' GROUP BY cost ORDER BY n DESC, cost DESC LIMIT 1"
    ).fetchone()
    return int(row[0]) if row is not None and row[0].isdigit() else None


class AuthService:
    def __init__(
        self,
        db: Database,
        bcrypt_rounds: int,
        *,
        pool: Executor | None = None,
        max_failures: int = 10,
        failure_window: float = 300.0,
    ) -> None:
        self.db = db
        self.rounds = bcrypt_rounds
        self.pool = pool
        self.limiter = LoginLimiter(max_failures, failure_window)
        self._decoy: str | None = None
        self._decoy_at = 0.0
        self._refresh: asyncio.Task[None] | None = None

    async def _bcrypt(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def prepare(self) -> None:
        """Hash the decoy at the cost most stored hashes use (BCRYPT_ROUNDS when there are none)."""
        cost = await self.db.read(most_common_cost) or self.rounds
        if self._decoy is None or hash_cost(self._decoy) != cost:
            self._decoy = await self._bcrypt(hash_password, DECOY_PASSWORD, cost)
        self._decoy_at = time.monotonic()

    async def _decoy_hash(self) -> str:
        if self._decoy is None:
            await self.prepare()
        elif time.monotonic() - self._decoy_at > DECOY_REFRESH and self._refresh is None:
            self._decoy_at = time.monotonic()
            self._refresh = asyncio.create_task(self._refresh_decoy())
        assert self._decoy is not None
        return self._decoy

    async def _refresh_decoy(self) -> None:
        try:
            await self.prepare()
        finally:
            self._refresh = None

    async def authenticate(self, email: str, password: str) -> User:
        email = email.strip()
        key = email.lower()
        self.limiter.begin(key)
        try:
            user, matches, hashed = await self._check(email, password)
        except BaseException:
            self.limiter.abandoned(key)
            raise
        if user is None or not matches or not user.is_active:
            # Who tried and why, for an operator watching for guessing; never the password.
            reason = "unknown email" if user is None else "inactive user" if matches else "wrong password"
            log.info("login refused: %s", reason, extra={"email": email, "reason": reason})
            if self.limiter.failed(key):
                audit("login.locked", "too_many_attempts", email=key, failures=self.limiter.max_failures)
            raise Unauthorized("invalid email or password")
        self.limiter.succeeded(key)
        if hash_cost(hashed) != self.rounds:
            await self._rehash(user.id, password, hashed)
        return user

    async def _check(self, email: str, password: str) -> tuple[User | None, bool, str]:
        found = await self.db.read(lambda cur: Repository(USERS, cur).secret("password_hash", "email", email))
        user, hashed = found if found is not None else (None, await self._decoy_hash())
        return user, await self._bcrypt(password_matches, password, hashed), hashed

    async def _rehash(self, user_id: str, password: str, old: str) -> None:
        """Store the password at BCRYPT_ROUNDS, unless it changed meanwhile (compare-and-set).
        Only the secret column changes: the record, its version, KV and events stay as they are."""
        new = await self._bcrypt(hash_password, password, self.rounds)

        def store(uow: UnitOfWork) -> None:
            uow.cursor.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?", [new, user_id, old]
            )

        await self.db.write(store)
