"""Failed logins per email: after `max_failures` within `window` seconds the email is refused
(429) for `window` seconds, before any bcrypt work. Unknown emails count the same as known
ones, so the refusal says nothing about which exist. In memory, per service process.

Logins still being checked count too (`begin` ... `failed`/`succeeded`): 32 guesses sent at
once would otherwise all pass the check before the first failure is counted, and queue 32
bcrypt checks for one email."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from service.model.errors import TooManyAttempts

MAX_TRACKED = 100_000  # emails with recent failures kept; older ones are dropped past this


class LoginLimiter:
    def __init__(self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._checking: dict[str, int] = {}

    def check(self, key: str) -> None:
        """Raise TooManyAttempts while `key` is locked out."""
        until = self._locked_until.get(key)
        if until is None:
            return
        now = self._clock()
        if now < until:
            raise TooManyAttempts(f"too many failed logins for this email; try again in {until - now:.0f} s")
        del self._locked_until[key]

    def begin(self, key: str) -> None:
        """A login for `key` starts its password check: refused (429) while locked out, or while
        the failures so far plus the checks under way reach the limit."""
        self.check(key)
        checking = self._checking.get(key, 0)
        if len(self._failures.get(key, ())) + checking >= self.max_failures:
            raise TooManyAttempts("too many logins for this email at once; try again shortly")
        self._checking[key] = checking + 1

    def _done(self, key: str) -> None:
        if (left := self._checking.get(key, 0) - 1) > 0:
            self._checking[key] = left
        else:
            self._checking.pop(key, None)

    def failed(self, key: str) -> bool:
        """Count a failure; True when it starts a lock-out (the caller audits that once)."""
        self._done(key)
        now = self._clock()
        failures = self._failures.setdefault(key, deque())
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(self._failures) > MAX_TRACKED:
            self._forget_old(now)
        if len(failures) < self.max_failures:
            return False
        failures.clear()
        self._locked_until[key] = now + self.window
        return True

    def succeeded(self, key: str) -> None:
        self._done(key)
        self._failures.pop(key, None)

    def abandoned(self, key: str) -> None:
        """The check ended without a verdict (an error): neither a failure nor a success."""
        self._done(key)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, f in self._failures.items() if not f or f[-1] <= now - self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
