"""Issue 10, the table of nats-server.conf, user by user: every allow and every deny, over
real connections to a nats-server started with the repository's conf (tests/natsd.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig
from nats.js.errors import BucketNotFoundError

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.client import Client
from tests.factories import Factory
from tests.natsd import READER_INBOX, NatsServer
from tests.permissions import Probe
from tests.sync_helpers import eventually

ADMIN_SUBJECTS = [
    "ekko.admin.sync.verify",
    "ekko.admin.sync.repair",
    "ekko.admin.migration.check",
    "ekko.admin.migration.validate",
    "ekko.admin.migration.migrate",
    "ekko.admin.backup",
    "ekko.admin.users.create",
    "ekko.admin.users.update",
]


@pytest.fixture
async def probes(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[dict[str, Probe]]:
    found = {
        "client": await Probe.connect(nats_server.url_for("client")),
        "admin": await Probe.connect(nats_server.url_for("admin")),
        "reader": await Probe.connect(nats_server.url_for("reader"), inbox_prefix=READER_INBOX),
        "anonymous": await Probe.connect(nats_server.anonymous_url),
    }
    yield found
    for probe in found.values():
        await probe.close()


async def answered(probe: Probe, subject: str, body: bytes = b"{}") -> int:
    """The status of the service's reply (fails the test on a timeout: the request was not let through)."""
    reply = await probe.nc.request(subject, body, timeout=10)
    return int((reply.headers or {}).get("Nats-Service-Error-Code", 200))


# -- client ------------------------------------------------------------------
@pytest.mark.parametrize("user", ["client", "admin", "anonymous"])
async def test_client_and_admin_may_request_every_entity_subject_login_and_health(
    user: str, probes: dict[str, Probe]
) -> None:
    probe = probes[user]
    for entity in ENTITIES:
        for action in ("create", "get", "update", "delete", "list"):
            assert await answered(probe, f"ekko.{entity}.{action}") in (200, 400, 404), (entity, action)
    assert await answered(probe, "ekko.users.authenticate", b'{"email":"a@b.co","password":"x"}') == 401
    assert await answered(probe, "ekko.health") == 200
    assert await answered(probe, "ekko.database.health") == 200
    assert not probe.errors


REPORT_SUBJECTS = {
    "ekko.reports.alert_stats": b"{}",
    "ekko.reports.wallet_overview": b'{"wallet_id":"00000000-0000-4000-8000-000000000000"}',
    "ekko.search": b'{"q":"x"}',
}


@pytest.mark.parametrize("user", ["client", "admin", "anonymous"])
async def test_client_and_admin_may_ask_for_reports_and_search(user: str, probes: dict[str, Probe]) -> None:
    for subject, body in REPORT_SUBJECTS.items():
        assert await answered(probes[user], subject, body) in (200, 404), subject
    assert not probes[user].errors


@pytest.mark.parametrize("subject", list(REPORT_SUBJECTS))
async def test_reader_may_not_ask_for_reports_or_search(subject: str, probes: dict[str, Probe]) -> None:
    """reader reads KV only; search would show it users, whose bucket it may not read."""
    assert await probes["reader"].publish_denied(subject, REPORT_SUBJECTS[subject])


@pytest.mark.parametrize("user", ["client", "anonymous"])
@pytest.mark.parametrize("subject", ADMIN_SUBJECTS)
async def test_client_may_not_request_admin_subjects(user: str, subject: str, probes: dict[str, Probe]) -> None:
    assert await probes[user].publish_denied(subject)


@pytest.mark.parametrize("user", ["client", "admin", "reader"])
@pytest.mark.parametrize(
    ("subject", "queue"),
    [("ekko.>", ""), ("ekko.users.>", ""), ("ekko.users.authenticate", "ekko"), (">", ""), ("$KV.>", "")],
)
async def test_only_the_service_may_subscribe_to_requests(
    user: str, subject: str, queue: str, probes: dict[str, Probe]
) -> None:
    assert await probes[user].subscribe_denied(subject, queue)


@pytest.mark.parametrize("user", ["client", "admin"])
@pytest.mark.parametrize(
    "subject",
    [
        "ekko.events.wallets.created",  # the EKKO_EVENTS stream
        "$KV.users.forged",  # a KV put is a publish on the bucket's subject
        "$JS.API.STREAM.INFO.KV_users",  # no JetStream at all
        "$JS.API.STREAM.DELETE.EKKO_EVENTS",
        "_INBOX.someone.else",  # no forged replies
    ],
)
async def test_client_and_admin_may_not_touch_jetstream_events_or_others_inboxes(
    user: str, subject: str, probes: dict[str, Probe]
) -> None:
    assert await probes[user].publish_denied(subject)


async def test_admin_may_request_admin_subjects(probes: dict[str, Probe]) -> None:
    assert await answered(probes["admin"], "ekko.admin.sync.verify") == 200
    assert await answered(probes["admin"], "ekko.admin.migration.check") == 200
    assert await answered(probes["admin"], "ekko.admin.users.create", b"{}") == 400  # answered: a body is missing
    assert not probes["admin"].errors


# -- reader ------------------------------------------------------------------
async def test_reader_may_get_and_watch_every_bucket_but_users(
    ekko: Ekko, client: Client, probes: dict[str, Probe]
) -> None:
    make = Factory(client)
    wallet = await make.create("wallets")
    user = await make.create("users")
    js = probes["reader"].nc.jetstream()
    wallets = await js.key_value("wallets")

    async def synced() -> bool:
        return (await ekko.status.sync_verify()).in_sync

    await eventually(synced, what="KV in sync")
    got = await wallets.get(wallet["id"])
    assert got.value is not None and json.loads(got.value)["id"] == wallet["id"]
    watcher = await wallets.watchall()
    entry = await watcher.updates(timeout=5)
    if entry is None:  # nats-py may mark "nothing pending" before the first value reaches it (its watcher's race)
        entry = await watcher.updates(timeout=5)
    assert entry is not None and entry.key == wallet["id"]
    await watcher.stop()
    for name in ENTITIES:
        if name != "users":
            await js.key_value(name)
    with pytest.raises((BucketNotFoundError, nats.errors.TimeoutError, nats.errors.Error)):
        await (await js.key_value("users")).get(user["id"])
    assert probes["reader"]._violation("publish", "$JS.API.STREAM.INFO.KV_users")


async def test_reader_may_consume_events_with_its_own_durable_consumer(
    ekko: Ekko, client: Client, probes: dict[str, Probe]
) -> None:
    await Factory(client).create("wallets")
    js = probes["reader"].nc.jetstream()
    sub = await js.pull_subscribe("ekko.events.>", durable="reader-audit", stream="EKKO_EVENTS")
    messages = await sub.fetch(1, timeout=10)
    assert json.loads(messages[0].data)["entity"] == "wallets"
    await messages[0].ack()
    info = await js.consumer_info("EKKO_EVENTS", "reader-audit")
    assert info.config.durable_name == "reader-audit"
    assert not probes["reader"].errors


@pytest.mark.parametrize(
    "subject",
    [
        "$KV.wallets.forged",  # KV put
        "$KV.users.forged",
        "ekko.events.wallets.created",  # event publish
        "ekko.wallets.get",  # no requests to the service
        "ekko.users.authenticate",
        "ekko.admin.backup",
        "$JS.API.STREAM.INFO.KV_users",  # not the users bucket
        "$JS.API.DIRECT.GET.KV_users.$KV.users.x",
        "$JS.API.STREAM.DELETE.KV_wallets",  # nothing that changes a stream
        "$JS.API.STREAM.PURGE.EKKO_EVENTS",
        "$JS.API.STREAM.CREATE.MINE",
    ],
)
async def test_reader_may_not_write_request_or_read_users(subject: str, probes: dict[str, Probe]) -> None:
    assert await probes["reader"].publish_denied(subject)


async def test_reader_may_not_receive_replies_meant_for_others(probes: dict[str, Probe]) -> None:
    assert await probes["reader"].subscribe_denied("_INBOX.>")


async def test_reader_consumers_cannot_be_made_by_client(probes: dict[str, Probe]) -> None:
    js = probes["client"].nc.jetstream()
    with pytest.raises(nats.errors.Error):
        await js.add_consumer("EKKO_EVENTS", ConsumerConfig(durable_name="client-tries"), timeout=2)
    assert probes["client"]._violation("publish", "$JS.API.CONSUMER.DURABLE.CREATE.EKKO_EVENTS.client-tries")


# -- who may connect ---------------------------------------------------------
async def test_a_wrong_password_is_refused(nats_server: NatsServer) -> None:
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error)):
        url = nats_server.url_for("admin").replace("test-admin-password", "guess")
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2)


async def test_without_no_auth_user_a_connection_without_credentials_is_refused(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js", no_auth_user="").start()
    try:
        with pytest.raises((nats.errors.NoServersError, nats.errors.Error)):
            await nats.connect(server.anonymous_url, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2)
        nc = await nats.connect(server.url_for("client"))
        await nc.close()
    finally:
        server.stop()
