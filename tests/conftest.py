"""Shared fixtures: a real nats-server per test session, a fresh DuckDB file per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.natsd import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (KV bucket names are fixed, so tests must not share one).
    Starting one takes a few tens of milliseconds; the test may stop() and start() it."""
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ekko.db"


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
