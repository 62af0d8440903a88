"""Login by email and password. The answer never says which of the two was wrong."""

from __future__ import annotations

import asyncio
import logging

from schema.users import User
from service.model.errors import Unauthorized
from service.model.registry import USERS
from service.model.rules import hash_password, password_matches
from service.store.database import Database
from service.store.repository import Repository

log = logging.getLogger(__name__)


class AuthService:
    def __init__(self, db: Database, bcrypt_rounds: int) -> None:
        self.db = db
        # Checked when the email is unknown, so both failures cost one bcrypt check.
        self._decoy_hash = hash_password("decoy-password", bcrypt_rounds)

    async def authenticate(self, email: str, password: str) -> User:
        found = await self.db.read(lambda cur: Repository(USERS, cur).secret("password_hash", "email", email.strip()))
        user, hashed = found if found is not None else (None, self._decoy_hash)
        matches = await asyncio.to_thread(password_matches, password, hashed)
        if user is None or not matches or not user.is_active:
            # Who tried and why, for an operator watching for guessing; never the password.
            reason = "unknown email" if user is None else "inactive user" if matches else "wrong password"
            log.info("login refused: %s", reason, extra={"email": email.strip(), "reason": reason})
            raise Unauthorized("invalid email or password")
        return user
