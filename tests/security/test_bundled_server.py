"""`ekko run` without NATS_URL: the bundled nats-server runs nats-server.conf with passwords
generated on first use, the service connects as `ekko`, and a connection without
credentials is `client` (so the README's `nats req` examples work as written)."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from service.app import Ekko
from service.cli import natsd
from service.config import Settings, with_local_service_user
from tests.natsd import free_port
from tests.permissions import Probe


async def test_the_bundled_server_needs_no_set_up_and_is_not_open(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=tmp_path / "data" / "ekko.db", bcrypt_rounds=4, bundled_nats_port=free_port())
    url, server = natsd.ensure_local_server(settings)
    assert server is not None
    try:
        app = Ekko(with_local_service_user(settings), url)
        await app.start()
        try:
            anonymous = await Probe.connect(url)
            reply = await anonymous.nc.request("ekko.health", b"", timeout=10)
            assert b"status" in reply.data
            assert await anonymous.publish_denied("ekko.admin.backup")
            assert await anonymous.subscribe_denied("ekko.users.>")
            await anonymous.close()
            with pytest.raises((nats.errors.NoServersError, nats.errors.Error)):
                await nats.connect(
                    url.replace("nats://", "nats://admin:guess@"), allow_reconnect=False, max_reconnect_attempts=1
                )
        finally:
            await app.stop()
    finally:
        natsd.stop(server)
