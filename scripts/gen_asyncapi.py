"""Write docs/asyncapi.json: the AsyncAPI 3.0.0 description of ekko, generated from the code
(never from a hand-written list of subjects), so a new subject appears by being served:

- every subject of the endpoint catalogue (handlers/stats.py) is a channel with a `receive`
  operation whose `reply` names its reply message and the error message;
- the `$SRV.*` discovery subjects (handlers/discovery.py);
- the change events of the EKKO_EVENTS stream (service/sync/jetstream.py, schema/events.py);
- payloads: the JSON Schemas of scripts/gen_schemas.py (the same as docs/schemas.json);
- servers and security: the users of nats-server.conf, and on each operation the users whose
  permissions allow it.

    python -m scripts.gen_asyncapi           # rewrite docs/asyncapi.json
    python -m scripts.gen_asyncapi --check   # exit 1 when the file is out of date

The output is the same bytes on every run (no timestamps, no instance ids); a test checks it is
current and valid against the official AsyncAPI 3.0.0 JSON Schema.
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec

from handlers.discovery import DESCRIPTION, REPLIES, SERVICE_NAME, discovery_subjects
from handlers.stats import schema_name
from schema.common import ErrorReply
from schema.events import Action
from scripts import natsconf
from scripts.gen_schemas import catalogue, error_codes, events, schemas, subjects, write_or_check
from service import __version__
from service.config import Settings
from service.sync.jetstream import EVENT_HEADERS, EVENTS_STREAM, OPTIONAL_EVENT_HEADERS, JetStreamSync

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "asyncapi.json"
CONF = ROOT / "nats-server.conf"
SCHEMAS = "#/components/schemas/{name}"
REPLIES_CHANNEL = "replies"
ERROR = "Error"
NO_BODY = "NoBody"
NO_BODY_SCHEMA = {
    "description": "this subject takes no body: send nothing, {} or null",
    "anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}],
}
NATS_BINDING = "0.1.0"


def ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def message(name: str, payload: Any, summary: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    found = {"name": name, "title": name, "summary": summary, "contentType": "application/json", "payload": payload}
    return found if headers is None else {**found, "headers": headers}


def headers_schema(described: dict[str, dict[str, Any]], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {"type": "object", "properties": described, "required": [h for h in described if h not in optional]}


def error_headers() -> dict[str, Any]:
    statuses = sorted({str(status) for status in error_codes().values()})
    return headers_schema(
        {
            "Nats-Service-Error-Code": {"type": "string", "enum": statuses, "description": "the status, as text"},
            "Nats-Service-Error": {"type": "string", "maxLength": 512, "description": "error.message on one line"},
        }
    )


def channel_id(subject: str) -> str:
    """A channel or operation key ([A-Za-z0-9._-]): the subject with `$`, braces and `>` dropped."""
    return re.sub(r"[^\w.-]", "", subject.replace(">", "all"))


def parameters(address: str, values: dict[str, list[str]]) -> dict[str, Any]:
    return {
        name: {"description": f"the {name} token of the subject", **({"enum": values[name]} if name in values else {})}
        for name in re.findall(r"\{(\w+)\}", address)
    }


def concrete(address: str) -> str:
    """The address with every `{parameter}` as one token, to test users' permissions against it."""
    return re.sub(r"\{\w+\}", "x", address)


class Builder:
    """Collects channels, operations, messages and the users allowed on each operation."""

    def __init__(self, users: dict[str, dict[str, list[str]]], payloads: dict[int, Any]) -> None:
        self.users = users
        self.payloads = payloads  # id(type) -> its schema (a $ref to components/schemas)
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {
            ERROR: message(
                ERROR, ref("components", "schemas", "ErrorReply"), "an error reply (any subject)", error_headers()
            )
        }
        self.reply_messages: dict[str, Any] = {ERROR: ref("components", "messages", ERROR)}

    def allowed(self, verb: str, subject: str) -> list[dict[str, str]]:
        return [
            ref("components", "securitySchemes", user)
            for user, permissions in self.users.items()
            if any(natsconf.matches(rule, concrete(subject)) for rule in permissions[verb])
        ]

    def shape_message(self, shape: Any, fallback: str, summary: str) -> str:
        """The message id of a request/reply shape, added once (a plain type is named `fallback`)."""
        if shape is None and fallback.endswith("request"):
            name, payload = NO_BODY, NO_BODY_SCHEMA
        else:
            name = schema_name(shape) or fallback
            payload = self.payloads[id(shape)] if shape is not None else {"description": "free-form JSON"}
        self.messages.setdefault(name, message(name, payload, summary))
        return name

    def request_reply(self, subject: str, request: Any, reply: Any, *, queue: str | None, about: str) -> None:
        key = channel_id(subject)
        sent = self.shape_message(request, f"{key}-request", f"request of {about}")
        answer = self.shape_message(reply, f"{key}-reply", f"reply of {about}")
        self.reply_messages[answer] = ref("components", "messages", answer)
        self.channels[key] = {
            "address": subject,
            "messages": {"request": ref("components", "messages", sent)},
            **({"parameters": parameters(subject, {})} if "{" in subject else {}),
        }
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": ref("channels", key),
            "summary": about,
            "messages": [ref("channels", key, "messages", "request")],
            "reply": {
                "channel": ref("channels", REPLIES_CHANNEL),
                "messages": [ref("channels", REPLIES_CHANNEL, "messages", m) for m in (answer, ERROR)],
            },
            "security": self.allowed("publish", subject),
        }
        if queue is not None:
            operation["bindings"] = {"nats": {"queue": queue, "bindingVersion": NATS_BINDING}}
        self.operations[key] = operation

    def events(self, address: str, by_entity: dict[str, Any]) -> None:
        names = {entity: f"{schema_name(event)}" for entity, event in by_entity.items()}
        for entity, event in by_entity.items():
            self.messages[names[entity]] = message(
                names[entity],
                self.payloads[id(event)],
                f"a change of one {entity} record",
                headers_schema(EVENT_HEADERS, OPTIONAL_EVENT_HEADERS),
            )
        actions = list(typing.get_args(Action))
        self.channels["events"] = {
            "address": address,
            "description": f"Stream {EVENTS_STREAM} (subjects {address.split('{')[0]}>): every committed change,"
            " at least once (Nats-Msg-Id de-duplicates). Read it with a JetStream consumer of the stream.",
            "parameters": parameters(address, {"entity": list(by_entity), "action": actions}),
            "messages": {n: ref("components", "messages", n) for n in names.values()},
        }
        consumers = f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}"
        readers = {ref_["$ref"] for ref_ in self.allowed("publish", consumers) + self.allowed("subscribe", address)}
        self.operations["events"] = {
            "action": "send",
            "channel": ref("channels", "events"),
            "summary": "the service publishes one event per committed change",
            "messages": [ref("channels", "events", "messages", n) for n in names.values()],
            "security": [{"$ref": r} for r in sorted(readers)],
        }


def security_schemes(users: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    return {
        user: {
            "type": "userPassword",
            "description": f"NATS user `{user}` of nats-server.conf; operations list the users allowed."
            f" May publish to {', '.join(p['publish'])}; may subscribe to {', '.join(p['subscribe'])}.",
        }
        for user, p in users.items()
    }


def document() -> dict[str, Any]:
    settings = Settings()
    endpoints = catalogue()
    table = subjects(endpoints)
    discovery = {s: REPLIES[s.split(".")[1]] for s in discovery_subjects("{instance_id}")}
    by_entity = events()
    requests = [req for req, _ in table.values() if req is not None]
    replies = [rep for _, rep in table.values() if rep is not None]
    replies += [ErrorReply, *discovery.values(), *by_entity.values()]
    request_schemas, reply_schemas, components = schemas(requests, replies, SCHEMAS)
    payloads = dict(zip(map(id, requests), request_schemas, strict=True))
    payloads.update(zip(map(id, replies), reply_schemas, strict=True))
    users = natsconf.users(CONF)
    build = Builder(users, payloads)
    for endpoint in endpoints:
        request, reply = table[endpoint.subject]
        build.request_reply(endpoint.subject, request, reply, queue=endpoint.queue_group, about=endpoint.subject)
    for subject, reply in discovery.items():  # every instance answers: no queue group
        build.request_reply(subject, None, reply, queue=None, about=f"{subject} (NATS services protocol, ADR-32)")
    build.events(
        f"{JetStreamSync(subject_prefix=settings.subject_prefix).events_subject}.{{entity}}.{{action}}", by_entity
    )
    build.channels[REPLIES_CHANNEL] = {
        "address": None,
        "description": "The reply subject of the request (an inbox the requester's NATS client makes). Every"
        " request gets one reply: the reply message of its subject, or an error with the headers.",
        "messages": dict(sorted(build.reply_messages.items())),
    }
    conf = natsconf.parse(CONF.read_text())
    return {
        "asyncapi": "3.0.0",
        "info": {"title": SERVICE_NAME, "version": __version__, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "bundled": {
                "host": f"{conf['host']}:{settings.bundled_nats_port}",
                "protocol": "nats",
                "description": "the nats-server `ekko run` starts when NATS_URL is unset (nats-server.conf);"
                " elsewhere any NATS with JetStream and the same users",
                "security": [ref("components", "securitySchemes", user) for user in users],
            }
        },
        "channels": build.channels,
        "operations": build.operations,
        "components": {
            "schemas": components,
            "messages": dict(sorted(build.messages.items())),
            "securitySchemes": security_schemes(users),
        },
    }


def render() -> bytes:
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"


if __name__ == "__main__":
    sys.exit(write_or_check(OUTPUT, render(), sys.argv[1:], "python -m scripts.gen_asyncapi"))
