"""Real traffic matches the published contract: requests sent and replies received over NATS
(create, get, update, list, delete of every entity, login, health, admin, error replies) match
docs/schemas.json, error headers match docs/asyncapi.json, and every event read back from the
EKKO_EVENTS stream matches its entity's event schema and the documented headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from nats.aio.client import Client as NATS

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.client import Client, Reply
from tests.factories import PASSWORD, Factory, edit_of
from tests.support import assert_valid, published
from tests.sync_helpers import read_event_messages, relay_idle

ASYNCAPI = json.loads((Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json").read_bytes())
MISSING = "00000000-0000-4000-8000-000000000000"


def headers_valid(message: str, headers: dict[str, str]) -> None:
    """The headers of an error reply or an event by the AsyncAPI message `message`: the
    documented ones are there, and no other."""
    schema = ASYNCAPI["components"]["messages"][message]["headers"]
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(headers)]
    assert not errors, f"{message} headers {headers}: {errors}"
    undocumented = set(headers) - set(schema["properties"])
    assert not undocumented, f"{message} carries headers docs/asyncapi.json does not list: {undocumented}"


async def call(client: Client, subject: str, body: Any = None) -> Reply:
    """Send `body` (checked against the subject's request schema first) and check the reply
    against the subject's reply schema, or an error reply against the error schema."""
    documented = published()["subjects"][subject]
    assert_valid(documented["request"], body, f"the request to {subject}")
    reply = await client.request(subject, body)
    if reply.ok:
        assert_valid(documented["reply"], reply.body, f"the reply of {subject}")
    else:
        error_of(reply)
    return reply


def error_of(reply: Reply) -> dict[str, Any]:
    assert_valid(published()["error"], reply.body, "an error reply")
    headers_valid("Error", reply.headers)
    assert published()["error_codes"][reply.error["code"]] == reply.status
    return reply.error


async def test_every_entity_s_replies_match_the_published_schemas(ekko: Ekko, client: Client, make: Factory) -> None:
    for name, spec in ENTITIES.items():
        body = await make.payload(name)
        record = (await call(client, f"ekko.{name}.create", body)).body
        assert (await call(client, f"ekko.{name}.get", {"id": record["id"]})).ok
        field, value = edit_of(name)
        update = {"id": record["id"], field: value, "expected_version": 1}
        assert (await call(client, f"ekko.{name}.update", update)).ok
        filters = {"id": {"in": [record["id"]]}, "version": {"gte": 1}, "created_at": {"lte": "9999-01-01T00:00:00Z"}}
        page = (await call(client, f"ekko.{name}.list", {"filters": filters, "sort": ["-created_at"], "limit": 5})).body
        assert [item["id"] for item in page["items"]] == [record["id"]]
        # errors, each a reply by the error schema and headers
        assert (await call(client, f"ekko.{name}.get", {"id": MISSING})).status == 404
        unknown = await client.request(f"ekko.{name}.create", {**body, "no_such_field": 1})
        assert unknown.status == 400 and error_of(unknown)["details"][0]["field"] == "no_such_field"
        stale = await call(client, f"ekko.{name}.update", {**update, "expected_version": 1})
        assert stale.status == 409
        if spec.name == "users":
            continue  # deleted below, after the login checks
        assert (await call(client, f"ekko.{name}.delete", {"id": record["id"], "cascade": True})).ok


async def test_login_health_and_admin_replies_match_the_published_schemas(
    ekko: Ekko, client: Client, make: Factory
) -> None:
    user = await make.create("users")
    assert (await call(client, "ekko.users.authenticate", {"email": user["email"], "password": PASSWORD})).ok
    wrong = await call(client, "ekko.users.authenticate", {"email": user["email"], "password": "wrong password"})
    assert wrong.status == 401
    for subject in ("ekko.health", "ekko.database.health", "ekko.metrics", "ekko.admin.sync.verify"):
        assert (await call(client, subject)).ok, subject
    await relay_idle(ekko)
    for subject in ("ekko.admin.sync.repair", "ekko.admin.migration.check", "ekko.admin.migration.validate"):
        assert (await call(client, subject)).ok, subject
    refused = await client.request("ekko.health", {"unexpected": 1})  # a body the schema refuses too
    assert refused.status == 400 and error_of(refused)["details"][0]["field"] == "body"


async def test_every_event_on_the_stream_matches_its_schema_and_headers(
    ekko: Ekko, client: Client, make: Factory, service_nc: NATS
) -> None:
    wallet = await make.create("wallets")
    await make.create("wallet_balances", wallet_id=wallet["id"])
    await client.ok("ekko.wallets.update", {"id": wallet["id"], "name": "renamed"})
    await client.ok("ekko.wallets.delete", {"id": wallet["id"], "cascade": True})
    await relay_idle(ekko)
    messages = await read_event_messages(service_nc)
    seen = set()
    for msg in messages:
        _, _, entity, action = msg.subject.split(".")
        event = json.loads(msg.data)
        assert_valid(published()["events"][entity], event, f"the event on {msg.subject}")
        assert (event["entity"], event["action"]) == (entity, action)
        headers_valid(f"{ENTITIES[entity].record.__name__}Event", dict(msg.headers or {}))
        seen.add((entity, action))
    assert {
        ("wallets", "created"),
        ("wallets", "updated"),
        ("wallets", "deleted"),
        ("wallet_balances", "deleted"),
    } <= seen
