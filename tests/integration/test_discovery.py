"""The NATS services protocol (ADR-32) over a real NATS: every discovery subject answers,
every instance answers, INFO lists exactly what is served, and STATS counts each request
once, error replies included (tests/e2e/test_js_client.py reads the same with the
official JavaScript services client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
import pytest

from handlers.discovery import discovery_subjects
from service.app import Ekko
from service.config import Settings
from tests.client import Client
from tests.natsd import NatsServer

TYPES = {"PING": "ping_response", "INFO": "info_response", "STATS": "stats_response"}


async def ask(client: Client, subject: str) -> dict[str, Any]:
    reply = await client.nc.request(subject, b"", timeout=5)
    body: dict[str, Any] = json.loads(reply.data)
    return body


async def test_every_discovery_subject_answers_with_its_type(ekko: Ekko, client: Client) -> None:
    subjects = discovery_subjects(ekko.instance_id)
    assert len(subjects) == 9
    for subject in subjects:
        body = await ask(client, subject)
        verb = subject.split(".")[1]
        assert body["type"] == f"io.nats.micro.v1.{TYPES[verb]}", subject
        assert (body["name"], body["id"], body["version"]) == ("ekko", ekko.instance_id, "0.1.0")
        assert body["metadata"]["database"] == str(ekko.settings.duckdb_path)
    with pytest.raises(nats.errors.NoRespondersError):
        await client.nc.request("$SRV.PING.ekko.not-this-instance", b"", timeout=2)


async def test_info_lists_every_served_subject_once_with_its_queue_group(ekko: Ekko, client: Client) -> None:
    # FastStream's NATS subscribers know their subject and queue group (not on the base type)
    served: dict[str, Any] = {s._resolved_subject_string: s for s in ekko.broker.subscribers}  # type: ignore[attr-defined]
    api = {subject: s.queue for subject, s in served.items() if not subject.startswith("$SRV.")}
    info = await ask(client, "$SRV.INFO.ekko")
    listed = {e["subject"]: e["queue_group"] for e in info["endpoints"]}
    assert len(listed) == len(info["endpoints"]), "each subject once"
    assert listed == api
    assert len({e["name"] for e in info["endpoints"]}) == len(listed), "endpoint names are unique"
    # discovery itself is in no queue group: every instance must answer
    assert all(not s.queue for subject, s in served.items() if subject.startswith("$SRV."))


async def test_stats_count_requests_errors_and_undecodable_bodies(ekko: Ekko, client: Client) -> None:
    wallet = await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "cd" * 20})
    await client.ok("ekko.wallets.get", {"id": wallet["id"]})
    await client.request("ekko.wallets.get", {"id": "00000000-0000-4000-8000-000000000000"})  # 404
    await client.raw("ekko.wallets.get", b"[1, 2")  # not JSON: refused by the decoder, still counted
    await client.request("ekko.wallets.update", {"id": wallet["id"], "no_such_field": 1})
    await client.request("ekko.health")
    stats = {e["subject"]: e for e in (await ask(client, "$SRV.STATS.ekko"))["endpoints"]}
    get = stats["ekko.wallets.get"]
    assert (get["num_requests"], get["num_errors"]) == (3, 2)
    assert get["last_error"].startswith("400 ")
    assert (stats["ekko.wallets.update"]["num_requests"], stats["ekko.wallets.update"]["num_errors"]) == (1, 1)
    assert (stats["ekko.wallets.create"]["num_requests"], stats["ekko.wallets.create"]["num_errors"]) == (1, 0)
    assert (stats["ekko.health"]["num_requests"], stats["ekko.health"]["num_errors"]) == (1, 0)
    assert stats["ekko.wallets.create"]["last_error"] == ""
    # discovery requests are not endpoints: asking for stats does not count
    again = {e["subject"]: e for e in (await ask(client, "$SRV.STATS"))["endpoints"]}
    assert sum(e["num_requests"] for e in again.values()) == 6


async def test_every_instance_answers_discovery_and_counts_only_its_own(
    settings: Settings, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Two deployments on one NATS (own names, own subjects): a bare $SRV.PING reaches both."""
    first = Ekko(settings, nats_server.url)
    second = Ekko(
        settings.with_(deployment="other", subject_prefix="other", duckdb_path=tmp_path / "other.db"), nats_server.url
    )
    await first.start()
    await second.start()
    nc = await nats.connect(nats_server.url)
    try:
        client = Client(nc)
        await client.ok("ekko.health")
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.STATS", b"", reply=inbox)
        replies = [json.loads((await sub.next_msg(timeout=5)).data) for _ in range(2)]
        by_id = {r["id"]: r for r in replies}
        assert set(by_id) == {first.instance_id, second.instance_id}
        assert by_id[second.instance_id]["metadata"]["deployment"] == "other"
        counts = {r["id"]: next(e["num_requests"] for e in r["endpoints"] if e["name"] == "health") for r in replies}
        assert counts == {first.instance_id: 1, second.instance_id: 0}
    finally:
        await nc.close()
        await second.stop()
        await first.stop()


async def test_with_counting_off_discovery_still_answers(settings: Settings, nats_server: NatsServer) -> None:
    app = Ekko(settings.with_(endpoint_stats=False), nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url)
    try:
        client = Client(nc)
        await client.ok("ekko.health")
        missing = await client.request("ekko.wallets.get", {"id": "00000000-0000-4000-8000-000000000000"})
        assert missing.status == 404, "error replies do not depend on counting"
        stats = await ask(client, "$SRV.STATS.ekko")
        assert all(e["num_requests"] == 0 for e in stats["endpoints"])
    finally:
        await nc.close()
        await app.stop()


async def test_discovery_ignores_whatever_body_comes_with_the_request(ekko: Ekko, client: Client) -> None:
    """The body means nothing here: not JSON though labelled JSON, it still gets the answer."""
    for body, headers in ((b"not json {", {"content-type": "application/json"}), (b"\xff\xfe", None)):
        reply = await client.nc.request("$SRV.PING.ekko", body, timeout=5, headers=headers)
        assert not (reply.headers or {}).get("Nats-Service-Error-Code"), reply.headers
        assert json.loads(reply.data)["type"] == "io.nats.micro.v1.ping_response"
