"""Logs: a whole run at DEBUG in JSON, parsed line by line. Every line is one JSON object,
requests and admin actions leave their lines, and no password or bcrypt hash appears."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import nats
import pytest

from service.app import Ekko
from service.cli.logs import setup_logging
from service.config import Settings
from tests import legacy_data as legacy
from tests.client import Client, assert_rejected
from tests.natsd import NatsServer
from tests.service_process import ekko_command, wait_ready

PASSWORDS = ["correct horse battery staple", "Tr0ub4dor&3-secret", "legacy-pass-77"]
LEGACY_HASH = bcrypt.hashpw(PASSWORDS[2].encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every logger into a string, as `EKKO_LOG_FORMAT=json EKKO_LOG_LEVEL=DEBUG` sets it up."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    setup_logging("DEBUG", "json", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def parsed(text: str) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = json.loads(line)  # fails the test on a line that is not one JSON object
        assert isinstance(entry, dict), f"line {number}: {line}"
        assert {"time", "level", "logger", "message"} <= set(entry), f"line {number}: {line}"
        entries.append(entry)
    return entries


def assert_no_secret(text: str) -> None:
    assert "$2b$" not in text and "$2a$" not in text
    assert LEGACY_HASH not in text
    for password in PASSWORDS:
        assert password not in text


async def test_a_full_run_logs_json_lines_with_requests_and_admin_actions_and_no_secret(
    json_log: io.StringIO, settings: Settings, nats_server: NatsServer, db_path: Path
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await legacy.put_all(js, "users", [(legacy.uid("users", 1), legacy.encoded(legacy.user(1, LEGACY_HASH)))])
    app = Ekko(settings, nats_server.url)
    await app.start()
    try:
        client = Client(nc)
        await wait_ready(client)  # a client's first request right after start can meet no responders
        migrated = await client.ok("ekko.admin.migration.migrate", {"backup": True})
        assert migrated["status"] == "migrated"
        for n, password in enumerate(PASSWORDS[:2]):
            await client.ok("ekko.users.create", {"email": f"op{n}@example.com", "password": password})
        await client.ok("ekko.users.authenticate", {"email": "op0@example.com", "password": PASSWORDS[0]})
        await client.ok("ekko.users.authenticate", {"email": "user1@example.com", "password": PASSWORDS[2]})
        wrong = {"email": "op1@example.com", "password": PASSWORDS[0]}  # someone else's password
        assert_rejected(await client.request("ekko.users.authenticate", wrong), 401)
        await client.ok("ekko.admin.backup")
        await client.ok("ekko.admin.sync.repair")
        await client.ok("ekko.admin.migration.validate")
        # The CLI too, logging JSON at DEBUG (it asks the running service).
        code, _, cli_err = await ekko_command(
            "db", "backup", nats_url=nats_server.url, db_path=db_path, EKKO_LOG_FORMAT="json", EKKO_LOG_LEVEL="DEBUG"
        )
        assert code == 0, cli_err
    finally:
        await app.stop()
        await nc.close()

    text = json_log.getvalue()
    entries = parsed(text)
    assert_no_secret(text)
    assert_no_secret(cli_err)
    parsed("\n".join(line for line in cli_err.splitlines() if line.startswith("{")))

    requests = [e for e in entries if e["logger"] == "ekko.requests"]
    assert all(e["level"] == "DEBUG" and {"subject", "status", "duration_ms"} <= set(e) for e in requests)
    logins = [e["status"] for e in requests if e["subject"] == "ekko.users.authenticate"]
    assert sorted(logins) == [200, 200, 401]
    assert any(e["subject"] == "ekko.users.create" and e["status"] == 200 for e in requests)

    info = [e["message"] for e in entries if e["level"] == "INFO"]
    assert any(m.startswith("login refused") for m in info)
    assert any(m.startswith("admin: migration requested") for m in info)
    assert any(m.startswith("migration migrated") for m in info)
    assert any(m.startswith("backup written") for m in info)
    assert any(m.startswith("repair: KV rewritten") for m in info)
    assert any(m.startswith("integrity check passed") for m in info)
    assert any(m.startswith("ekko ") and "serving" in m for m in info)  # lifecycle: start ...
    assert any(m.startswith("ekko stopping") for m in info)  # ... and stop


async def test_a_query_slower_than_the_setting_is_a_warning(
    json_log: io.StringIO, settings: Settings, nats_server: NatsServer
) -> None:
    app = Ekko(settings.with_(slow_query_ms=0.001), nats_server.url)  # every query is "slow"
    await app.start()
    nc = await nats.connect(nats_server.url)
    try:
        await wait_ready(Client(nc))
        await Client(nc).ok("ekko.wallets.list")
    finally:
        await nc.close()
        await app.stop()
    slow = [e for e in parsed(json_log.getvalue()) if e["message"].startswith("slow query")]
    assert slow and slow[0]["level"] == "WARNING"
    assert (slow[0]["entity"], slow[0]["operation"]) == ("wallets", "list") and slow[0]["duration_ms"] > 0
