"""docs/asyncapi.json is generated from the code, current, byte-stable, and a valid AsyncAPI
3.0.0 document by the official JSON Schema of the specification.

That schema, tests/fixtures/asyncapi/asyncapi-3.0.0.schema.json, is `schemas/3.0.0-without-$id.json`
of the npm package @asyncapi/specs 6.11.1 (Apache-2.0, AsyncAPI Initiative; LICENSE and NOTICE
beside it), vendored because tests run offline: `npm pack @asyncapi/specs@6.11.1` to refresh it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scripts import gen_asyncapi, natsconf
from service.app import Ekko
from service.config import Settings
from service.model.registry import ENTITIES

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
SPEC_SCHEMA = ROOT / "tests" / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"
SPEC_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(json.loads(ASYNCAPI.read_bytes()))


@pytest.fixture(scope="module")
def spec_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SPEC_SCHEMA.read_bytes())
    assert schema["title"] == "AsyncAPI 3.0.0 schema."
    return jsonschema.Draft7Validator(schema)


def spec_errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_asyncapi_json_is_generated_from_the_current_code() -> None:
    assert ASYNCAPI.read_bytes() == gen_asyncapi.render(), (
        "docs/asyncapi.json is stale: run python -m scripts.gen_asyncapi"
    )


def test_two_runs_write_the_same_bytes() -> None:
    assert gen_asyncapi.render() == gen_asyncapi.render()


def test_the_vendored_specification_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SPEC_SCHEMA.read_bytes()).hexdigest() == SPEC_SHA256


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any], spec_validator: jsonschema.Draft7Validator) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert spec_errors(spec_validator, document) == []


@pytest.mark.parametrize(
    ("what", "path", "value"),
    [
        ("an unknown operation action", ("operations", "ekko.wallets.get", "action"), "answer"),
        ("a reply without its channel's shape", ("operations", "ekko.wallets.get", "reply"), "Wallet"),
        ("a wrong AsyncAPI version", ("asyncapi",), "2.6.0"),
        ("an unknown security scheme type", ("components", "securitySchemes", "client", "type"), "password"),
    ],
)
def test_the_validator_rejects_a_broken_document(
    document: dict[str, Any], spec_validator: jsonschema.Draft7Validator, what: str, path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(document)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert spec_errors(spec_validator, broken), f"{what} passed validation"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
    return [r for v in node for r in refs(v)] if isinstance(node, list) else []


def test_every_reference_points_at_something(document: dict[str, Any]) -> None:
    for ref in set(refs(document)):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        assert isinstance(node, dict), ref


def test_every_subject_the_service_answers_is_a_channel(document: dict[str, Any]) -> None:
    app = Ekko(Settings(), "nats://127.0.0.1:1")  # built, never started
    app.bcrypt_pool.shutdown()
    answered = {
        sub._resolved_subject_string.replace(app.instance_id, "{instance_id}") for sub in app.broker.subscribers
    }
    addresses = {c["address"] for c in document["channels"].values()}
    assert answered <= addresses
    assert addresses - answered == {"ekko.events.{entity}.{action}", None}  # the events and the replies


def test_each_operation_replies_with_its_reply_message_or_the_error(document: dict[str, Any]) -> None:
    replies = document["channels"]["replies"]["messages"]
    for key, operation in document["operations"].items():
        if operation["action"] == "send":
            continue
        (request,) = operation["messages"]
        assert request["$ref"] == f"#/channels/{key}/messages/request"
        names = [m["$ref"].rsplit("/", 1)[1] for m in operation["reply"]["messages"]]
        assert names[-1] == "Error" and set(names) <= set(replies), key
    assert document["operations"]["ekko.wallets.get"]["reply"]["messages"][0]["$ref"].endswith("/Wallet")
    error = document["components"]["messages"]["Error"]
    assert set(error["headers"]["required"]) == {"Nats-Service-Error-Code", "Nats-Service-Error"}


def allowed(document: dict[str, Any], key: str) -> set[str]:
    return {ref["$ref"].rsplit("/", 1)[1] for ref in document["operations"][key]["security"]}


def test_security_names_the_conf_users_allowed_on_each_operation(document: dict[str, Any]) -> None:
    assert set(document["components"]["securitySchemes"]) == {"ekko", "client", "admin", "reader"}
    for name in ENTITIES:
        assert allowed(document, f"ekko.{name}.create") == {"ekko", "client", "admin"}
    assert allowed(document, "ekko.admin.backup") == {"ekko", "admin"}
    assert allowed(document, "events") == {"ekko", "reader"}  # reader: through a JetStream consumer


def test_the_conf_reader_reads_nats_server_conf_as_nats_server_does() -> None:
    conf = natsconf.parse((ROOT / "nats-server.conf").read_text())
    assert conf["max_payload"] == "8MB" and conf["jetstream"]["max_file_store"] == "10GB"
    users = natsconf.users(ROOT / "nats-server.conf")
    assert users["client"]["subscribe"] == ["_INBOX.>"]
    assert "ekko.admin.>" in users["admin"]["publish"] and "ekko.admin.>" not in users["client"]["publish"]
    assert users["client"]["publish"] == conf["CLIENT_REQUESTS"]  # $CLIENT_REQUESTS resolved
    assert natsconf.matches("ekko.*.get", "ekko.wallets.get") and not natsconf.matches("ekko.*", "ekko.wallets.get")
    assert natsconf.matches("ekko.>", "ekko.a.b") and not natsconf.matches("ekko.>", "ekko")


def test_events_are_described_per_entity_with_their_headers(document: dict[str, Any]) -> None:
    channel = document["channels"]["events"]
    assert channel["parameters"]["entity"]["enum"] == list(ENTITIES)
    for name, spec in ENTITIES.items():
        message = document["components"]["messages"][f"{spec.record.__name__}Event"]
        assert "Nats-Msg-Id" in message["headers"]["required"]
        payload = document["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert payload["properties"]["entity"] == {"enum": [name]}
    assert re.fullmatch(r"ekko\.events\.\{entity\}\.\{action\}", channel["address"])
