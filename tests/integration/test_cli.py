"""The `ekko` command as an operator runs it: a real process, real NATS, real DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

from service.app import Ekko
from tests.client import Client
from tests.natsd import NatsServer, free_port
from tests.service_process import ekko_command
from tests.sync_helpers import relay_idle


async def test_sync_verify_asks_the_running_service_when_it_holds_the_database(
    ekko: Ekko, client: Client, nats_server: NatsServer, db_path: Path
) -> None:
    await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "cd" * 20})
    await relay_idle(ekko)  # verify compares KV with DuckDB: the relay must have published
    code, out, err = await ekko_command("sync", "verify", "--json", nats_url=nats_server.url, db_path=db_path)
    assert "asking it over NATS" in err
    report = json.loads(out)
    assert code == 0 and report["in_sync"] is True
    assert next(b for b in report["buckets"] if b["entity"] == "wallets")["kv_keys"] == 1


async def test_sync_repair_works_offline_when_the_service_is_stopped(nats_server: NatsServer, db_path: Path) -> None:
    code, out, err = await ekko_command("sync", "repair", "--json", nats_url=nats_server.url, db_path=db_path)
    assert code == 0, err
    assert json.loads(out)["wallets"] == {"put": 0, "deleted": 0}


async def test_a_command_that_cannot_reach_nats_says_so_quickly(db_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    code, _, err = await ekko_command("sync", "verify", nats_url=url, db_path=db_path)
    assert code == 4
    assert f"cannot reach NATS at {url}" in err
    assert "Traceback" not in err
