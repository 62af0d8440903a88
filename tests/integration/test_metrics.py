"""`ekko.metrics`, its Prometheus twin, health's instance fields and `ekko status`, checked
against the requests each test makes itself."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import __version__
from service.app import Ekko
from service.config import ConfigError, Settings
from tests.client import Client, assert_rejected
from tests.natsd import NatsServer
from tests.service_process import ekko_command, wait_ready
from tests.sync_helpers import eventually

WALLETS = 3
HITS = 5
MISSING = 2


def wallet(n: int) -> dict[str, Any]:
    return {"blockchain_symbol": "ETH", "address": "0x" + f"{n:02x}" * 20, "balance": "1.5"}


async def make_known_traffic(client: Client) -> list[str]:
    """WALLETS creates and one refused create; HITS gets of existing wallets, MISSING of unknown ids."""
    ids = [(await client.ok("ekko.wallets.create", wallet(n)))["id"] for n in range(WALLETS)]
    assert_rejected(await client.request("ekko.wallets.create", {"blockchain_symbol": "ETH"}), 400)
    for n in range(HITS):
        await client.ok("ekko.wallets.get", {"id": ids[n % WALLETS]})
    for _ in range(MISSING):
        assert_rejected(await client.request("ekko.wallets.get", {"id": str(uuid.uuid4())}), 404)
    return ids


async def relayed(client: Client) -> dict[str, Any]:
    """The metrics once the relay has published everything."""

    async def done() -> bool:
        return (await client.ok("ekko.metrics"))["relay"]["pending"] == 0

    await eventually(done, what="relay caught up")
    return await client.ok("ekko.metrics")


async def test_metrics_count_the_requests_errors_reads_and_writes_this_test_made(
    ekko: Ekko, client: Client, settings: Settings
) -> None:
    await make_known_traffic(client)
    metrics = await relayed(client)

    creates, gets = metrics["requests"]["ekko.wallets.create"], metrics["requests"]["ekko.wallets.get"]
    assert (creates["requests"], creates["errors"]) == (WALLETS + 1, 1)
    assert creates["last_error"].startswith("400 ")
    assert (gets["requests"], gets["errors"]) == (HITS + MISSING, MISSING)
    assert gets["last_error"].startswith("404 ")
    latency = gets["latency_ms"]
    assert (
        latency["count"] == HITS + MISSING and 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    )
    assert "ekko.wallets.list" not in metrics["requests"]  # never asked

    # Creates fill the cache: the gets of existing wallets hit it, the unknown ids miss it
    # and each cost one read on DuckDB (get_many_encoded, decision 33; these came one at a time).
    # Query times are counted per process: other tests' reads may add to them, never take away.
    assert (metrics["cache"]["hits"], metrics["cache"]["misses"]) == (HITS, MISSING)
    assert metrics["cache"]["entries"] == WALLETS
    assert metrics["queries_ms"]["wallets.get_many_encoded"]["count"] >= MISSING
    assert metrics["queries_ms"]["wallets.find_duplicate"]["count"] >= WALLETS  # the unique key check

    assert metrics["relay"]["enabled"] and metrics["relay"]["published"] == WALLETS
    assert metrics["relay"]["lag_seconds"] is not None and metrics["relay"]["failed_attempts"] == 0
    # Each create is one write; the relay's outbox cleanup adds its own.
    assert metrics["writer"]["group_size"]["sum"] >= WALLETS and metrics["writer"]["queue_length"] == 0
    assert metrics["pool"]["size"] == settings.duckdb_pool_size and metrics["pool"]["waiting"] == 0
    assert metrics["integrity"] == {"ok": None, "checked_at": None}  # no check ever ran here
    assert metrics["instance"]["version"] == __version__ and metrics["instance"]["deployment"] == "ekko"


async def test_the_prometheus_endpoint_serves_the_same_counts(settings: Settings, nats_server: NatsServer) -> None:
    app = Ekko(settings.with_(metrics_port=0), nats_server.url)  # 0: any free port
    await app.start()
    nc = await nats.connect(nats_server.url)
    try:
        client = Client(nc)
        await wait_ready(client)
        await make_known_traffic(client)
        await relayed(client)
        assert app.metrics_endpoint is not None
        url = f"http://127.0.0.1:{app.metrics_endpoint.port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    finally:
        await nc.close()
        await app.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    get = (("subject", "ekko.wallets.get"),)
    assert samples[("ekko_requests_total", get)] == HITS + MISSING
    assert samples[("ekko_request_errors_total", get)] == MISSING
    assert samples[("ekko_request_latency_seconds", (("quantile", "0.99"), *get))] > 0
    assert samples[("ekko_cache_hits_total", ())] == HITS
    assert samples[("ekko_cache_misses_total", ())] == MISSING
    assert samples[("ekko_relay_published_total", ())] == WALLETS
    assert samples[("ekko_relay_pending", ())] == 0
    assert samples[("ekko_pool_size", ())] == settings.duckdb_pool_size
    # Misses are read by get_many_encoded (decision 33); each of these came alone, so one read
    # each. QUERY_TIMES is per process, so other tests' reads may add to it, never take away.
    assert samples[("ekko_queries_total", (("entity", "wallets"), ("operation", "get_many_encoded")))] >= MISSING


async def test_health_shows_version_deployment_uptime_and_a_cli_migrations_integrity_check(
    settings: Settings, nats_server: NatsServer, db_path: Path
) -> None:
    # The service is stopped: `ekko migrate` opens the database itself and validates.
    code, out, err = await ekko_command("migrate", "--json", nats_url=nats_server.url, db_path=db_path)
    assert code == 0, err
    checked_at = json.loads(out)["validation"]["checked_at"]

    app = Ekko(settings.with_(deployment="blue"), nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url)
    try:
        await wait_ready(Client(nc))
        health = await Client(nc).ok("ekko.database.health")
        metrics = await Client(nc).ok("ekko.metrics")
    finally:
        await nc.close()
        await app.stop()
    assert health["integrity"]["ok"] is True and health["integrity"]["checked_at"] == checked_at
    assert metrics["integrity"] == {"ok": True, "checked_at": checked_at}
    assert health["version"] == __version__ and health["deployment"] == "blue"
    assert health["uptime_seconds"] >= 0 and health["pool"]["waits"] == 0


async def test_ekko_status_prints_health_metrics_and_instance_of_the_running_service(
    ekko: Ekko, client: Client, nats_server: NatsServer, db_path: Path
) -> None:
    await make_known_traffic(client)
    code, out, err = await ekko_command("status", "--json", nats_url=nats_server.url, db_path=db_path)
    assert code == 0, err
    report = json.loads(out)
    assert report["health"]["status"] == "healthy"
    assert report["metrics"]["requests"]["ekko.wallets.get"]["requests"] == HITS + MISSING
    assert report["metrics"]["instance"]["database"] == str(db_path.absolute())

    code, out, err = await ekko_command("status", nats_url=nats_server.url, db_path=db_path)
    assert code == 0, err
    assert "health: healthy" in out and f"ekko {__version__}" in out and "ekko.wallets.get" in out


async def test_ekko_status_without_a_service_says_nothing_answers(nats_server: NatsServer, db_path: Path) -> None:
    code, _, err = await ekko_command("status", "--timeout", "2", nats_url=nats_server.url, db_path=db_path)
    assert code == 1 and "nothing answers" in err and "Traceback" not in err


async def test_a_metrics_port_in_use_stops_the_start_as_bad_configuration(
    settings: Settings, nats_server: NatsServer
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = Ekko(settings.with_(metrics_port=port), nats_server.url)
        with pytest.raises(ConfigError, match=f"EKKO_METRICS_PORT={port}"):
            await app.start()
    assert not settings.duckdb_path.exists()  # it stopped before opening anything
