"""Issue 9, never deaf: when NATS closes ekko's connection for good, `ekko run` logs it as an
error and exits non-zero (a supervisor restarts it) instead of living on without a connection.

The server closes it here the way it did in production: it lowers max_payload at run time
(a config reload), so ekko, which still knows the old limit, publishes a reply that is now
too large, and nats-server answers `-ERR 'Maximum Payload Violation'` and closes. nats-py
does not reconnect after that."""

from __future__ import annotations

import contextlib
from pathlib import Path

import nats
import nats.errors

from service.cli.common import EXIT_NO_NATS
from tests.client import Client
from tests.natsd import NatsServer
from tests.service_process import start_service, wait_ready
from tests.sync_helpers import eventually

MIB = 1024 * 1024


async def test_ekko_run_exits_non_zero_when_nats_closes_its_connection(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "jetstream", max_payload=2 * MIB).start()
    log = tmp_path / "ekko.log"
    proc = start_service(server.url, tmp_path / "data" / "ekko.db", log)
    nc = await nats.connect(server.url)
    try:
        client = Client(nc)
        await wait_ready(client)
        steps = [{"id": "", "name": "", "type": ""} for _ in range(26_000)]  # a ~1.5 MB record
        workflow = await client.ok("ekko.workflows.create", {"name": "big", "steps": steps})
        kv = await nc.jetstream().key_value("workflows")

        async def relayed() -> bool:
            try:
                return (await kv.get(workflow["id"])) is not None
            except nats.js.errors.KeyNotFoundError:
                return False

        await eventually(relayed, what="big workflow in KV")

        server.reload(max_payload=MIB)

        async def reloaded() -> bool:
            probe = await nats.connect(server.url)
            try:
                return probe.max_payload == MIB
            finally:
                await probe.close()

        await eventually(reloaded, what="server reloaded")
        # ekko still believes 2 MiB: its 1.5 MB reply makes the server close its connection.
        with contextlib.suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
            await client.request("ekko.workflows.get", {"id": workflow["id"]}, timeout=2)
        code = proc.wait(timeout=60)
        output = log.read_text()
        assert code == EXIT_NO_NATS, output[-3000:]
        assert "NATS closed the connection" in output, output[-3000:]
        assert "ERROR" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await nc.close()
        server.stop()


async def test_ekko_run_reconnects_when_the_server_restarts(tmp_path: Path) -> None:
    """The other way a connection ends: the server goes away and comes back. nats-py
    reconnects, ekko logs it, and keeps serving (it must not exit for this)."""
    server = NatsServer(tmp_path / "jetstream").start()
    log = tmp_path / "ekko.log"
    proc = start_service(server.url, tmp_path / "data" / "ekko.db", log)
    try:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        client = Client(nc)
        await wait_ready(client)
        server.restart()
        await wait_ready(client)
        assert (await client.request("ekko.wallets.list", {})).ok
        assert proc.poll() is None
        output = log.read_text()
        assert "NATS disconnected" in output and "NATS reconnected" in output, output[-3000:]
        await nc.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        server.stop()
