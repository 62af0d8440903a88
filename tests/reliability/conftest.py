"""Fixtures of the reliability tests; the helpers live in tests/hostile.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client import Client
from tests.hostile import TALLY, Hostile


@pytest.fixture
def hostile(client: Client) -> Hostile:
    return Hostile(client)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.sent:
        terminalreporter.write_line(
            f"hostile requests: sent {TALLY.sent}, answered {TALLY.answered}, answered 5xx {TALLY.server_errors}"
        )
