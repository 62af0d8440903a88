"""Issue 12: a second `ekko run` on another database, same deployment, same NATS, is refused
(exit 6, naming the owner's host, pid and database) instead of joining the queue group; once
the owner is SIGKILLed, a new process takes over within the lease TTL."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import nats
import pytest

from service.cli.common import EXIT_LEASE
from tests.client import Client
from tests.natsd import NatsServer
from tests.service_process import LEASE_TTL, start_service, wait_ready
from tests.sync_helpers import eventually


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert proc.returncode is not None, f"still running after {timeout} s"
    return proc.returncode


@pytest.mark.slow
async def test_one_writer_per_deployment(nats_server: NatsServer, tmp_path: Path) -> None:
    first_db, other_db = tmp_path / "one" / "ekko.db", tmp_path / "two" / "ekko.db"
    first = start_service(nats_server.url, first_db, tmp_path / "first.log")
    nc = await nats.connect(nats_server.url)
    client = Client(nc)
    try:
        await wait_ready(client)
        wallet = await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "ef" * 20})

        second_log = tmp_path / "second.log"
        second = start_service(nats_server.url, other_db, second_log)
        code = await wait_exit(second, timeout=30)
        said = second_log.read_text()
        assert code == EXIT_LEASE, said
        assert "another instance owns deployment 'ekko'" in said
        assert f"host {socket.gethostname()}, pid {first.pid}, database {first_db}" in said, said
        assert "Traceback" not in said
        assert not other_db.exists(), "the refused process never opened its database"
        for _ in range(10):  # only the owner answers: every get of the wallet finds it
            await client.ok("ekko.wallets.get", {"id": wallet["id"]})

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        heir = start_service(nats_server.url, other_db, tmp_path / "heir.log")
        try:

            async def heir_serves() -> bool:
                try:
                    reply = await nc.request("$SRV.PING.ekko", b"", timeout=0.5)
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                    return False
                return bool(json.loads(reply.data)["metadata"]["pid"] == str(heir.pid))

            # The dead owner's key lives at most LEASE_TTL; starting the process takes a few seconds more.
            await eventually(heir_serves, timeout=LEASE_TTL + 20, what="the new process serving")
            took = time.monotonic() - killed
            print(f"\ntaken over {took:.1f} s after SIGKILL (lease ttl {LEASE_TTL} s)")
            assert heir.poll() is None
            missing = await client.request("ekko.wallets.get", {"id": wallet["id"]})
            assert missing.status == 404, "the heir serves its own (other) database"
        finally:
            heir.send_signal(signal.SIGTERM)
            assert await wait_exit(heir, 30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        await nc.close()
