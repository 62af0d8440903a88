"""The `ekko` commands under nats-server.conf: admin work asked of the running service needs
user admin (or the service's own); anyone else is told at once, not after the timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.app import Ekko
from tests.natsd import NatsServer
from tests.service_process import ekko_command


async def test_a_client_asking_for_admin_work_is_refused_at_once(
    ekko: Ekko, nats_server: NatsServer, db_path: Path
) -> None:
    started = asyncio.get_running_loop().time()
    code, _, err = await ekko_command("sync", "verify", nats_url=nats_server.url_for("client"), db_path=db_path)
    assert code == 1, err
    assert "NATS refused ekko.admin.sync.verify" in err and "test-client-password" not in err
    assert asyncio.get_running_loop().time() - started < 30


async def test_an_admin_may_ask_for_admin_work(ekko: Ekko, nats_server: NatsServer, db_path: Path) -> None:
    code, out, err = await ekko_command(
        "sync", "verify", "--json", nats_url=nats_server.url_for("admin"), db_path=db_path
    )
    assert code == 0, err
    assert '"in_sync": true' in out
