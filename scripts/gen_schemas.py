#!/usr/bin/env python3
"""Write docs/schemas.json: the JSON Schema of every subject's request and reply, of the error
reply and of the change events, generated from the code so it cannot drift:

- the subjects, their request and reply Structs: the endpoint catalogue (handlers/stats.py) of
  the app, built without connecting (the same catalogue `$SRV.INFO` serves);
- decimals in requests: a string or a number, as service.model.values accepts them; in replies
  the fixed-point text the service writes;
- list filters: the operator table of service.model.queries, per entity and field;
- error codes: the ServiceError classes of service.model.errors;
- events: schema.events, one schema per entity with the record in place of its raw JSON.

    python scripts/gen_schemas.py           # rewrite docs/schemas.json
    python scripts/gen_schemas.py --check   # exit 1 when the file is out of date

tests/unit/test_docs.py fails when the file is stale. Descriptions (the Structs' docstrings) go
through inspect.cleandoc, so the file does not depend on how a msgspec version treats docstrings.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from handlers.stats import Endpoint
from schema.common import ErrorReply
from schema.events import ChangeEvent
from service.app import Ekko
from service.config import Settings
from service.model.errors import ServiceError
from service.model.registry import ENTITIES
from service.model.values import DECIMAL_INPUT_SCHEMA, TIMESTAMP_SCHEMA, decimal_input_schema

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "schemas.json"
DEFS = "#/$defs/{name}"
# Decimals in replies, KV values and events: format(value, "f") of a DECIMAL(24,8) value.
# Schemas written once as a component and referred to: a request's decimal, any timestamp.
SHARED: dict[str, dict[str, Any]] = {"DecimalInput": DECIMAL_INPUT_SCHEMA, "Timestamp": TIMESTAMP_SCHEMA}
DECIMAL_REPLY_SCHEMA = {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"}


def catalogue() -> list[Endpoint]:
    """Every endpoint the service registers, in registration order: the app is built (routers,
    services) but never started, so nothing connects and no file is opened."""
    app = Ekko(Settings(), "nats://127.0.0.1:1")
    app.bcrypt_pool.shutdown()
    return list(app.endpoints)


def _structs(cls: type = msgspec.Struct) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _structs(sub)


def resolve(shape: Any) -> Any:
    """A catalogue shape as a type: a Struct given by name (as `X.__name__`) is looked up among
    the loaded Structs; it must be unique (pass the Struct itself otherwise)."""
    if not isinstance(shape, str):
        return shape
    found = {s for s in _structs() if s.__name__ == shape}
    if len(found) != 1:
        raise LookupError(f"{len(found)} Structs are named {shape!r}: register the Struct itself, not its name")
    return found.pop()


def subjects(endpoints: Iterable[Endpoint] | None = None) -> dict[str, tuple[Any, Any]]:
    """subject -> (request type or None: no body, reply type or None: free-form)."""
    return {e.subject: (resolve(e.request), resolve(e.reply)) for e in endpoints or catalogue()}


def error_codes() -> dict[str, int]:
    """error.code -> its Nats-Service-Error-Code, for every ServiceError class."""

    def walk(cls: type[ServiceError]) -> Iterator[type[ServiceError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    return dict(sorted({cls.code: cls.status for cls in walk(ServiceError)}.items(), key=lambda kv: kv[1]))


def event_of(name: str) -> type[msgspec.Struct]:
    """`<Record>Event`: ChangeEvent with `entity` fixed and every raw-JSON field (the record,
    already encoded when published) typed as the entity's record or null."""
    record = ENTITIES[name].record
    fields: list[Any] = []
    for f in msgspec.structs.fields(ChangeEvent):
        tp = Literal[name] if f.name == "entity" else f.type
        if tp in (msgspec.Raw, msgspec.Raw | None):  # a Raw may hold JSON null (the record on delete)
            tp = record | None
        default = msgspec.json.decode(f.default) if isinstance(f.default, msgspec.Raw) else f.default
        fields.append((f.name, tp) if f.required else (f.name, tp, default))
    return msgspec.defstruct(f"{record.__name__}Event", fields, kw_only=True, module=__name__)


@functools.cache
def events() -> dict[str, type[msgspec.Struct]]:
    return {name: event_of(name) for name in ENTITIES}


DOC_KEYS = ("description", "title")
DATA_KEYS = ("default", "examples", "enum", "const")  # values, not schemas: left as they are


def rewrite(node: Any, decimal: dict[str, Any], ref_template: str) -> Any:
    """node with every description/title cleaned as inspect.cleandoc does, every msgspec decimal
    (`{"type": "string", "format": "decimal"}`) replaced by `decimal`, and every SHARED schema
    by a reference to its component (recursively)."""
    if isinstance(node, list):
        return [rewrite(item, decimal, ref_template) for item in node]
    if not isinstance(node, dict):
        return node
    for name, shared in SHARED.items():
        if node == shared:
            return {"$ref": ref_template.format(name=name)}
    if node.get("format") == "decimal" and node.get("type") == "string":
        rest = {k: v for k, v in node.items() if k not in ("type", "format")}
        named = [name for name, schema in SHARED.items() if schema == decimal]
        return {**rest, **({"$ref": ref_template.format(name=named[0])} if named else decimal)}
    cleaned = {}
    for key, value in node.items():
        if key in DOC_KEYS and isinstance(value, str):
            cleaned[key] = inspect.cleandoc(value)
        elif key in DATA_KEYS:
            cleaned[key] = value
        else:
            cleaned[key] = rewrite(value, decimal, ref_template)
    return cleaned


def typed_fields(types_: list[Any]) -> dict[str, dict[str, Any]]:
    """Struct name -> {field: its kind} for the datetime and decimal fields of every Struct
    reachable from `types_`: msgspec writes a datetime as a bare string and a decimal without
    its limits, so those fields get their exact schema here. A kind is "datetime" or
    (precision, scale): DECIMAL(24,8) unless the field says `Meta(extra={"decimal": (p, s)})`."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, tuple):
            for item in node:
                walk(item)
        elif isinstance(node, msgspec.inspect.StructType):
            if node.cls.__name__ not in found:
                kinds = {f.encode_name: kind_of(f.type) for f in node.fields}
                found[node.cls.__name__] = {name: kind for name, kind in kinds.items() if kind is not None}
                walk(tuple(f.type for f in node.fields))
        elif isinstance(node, msgspec.inspect.Type):
            walk(tuple(getattr(node, f) for f in node.__struct_fields__))

    walk(msgspec.inspect.multi_type_info(types_))
    return found


def kind_of(node: Any) -> Any:
    if isinstance(node, msgspec.inspect.UnionType):
        return next((kind for t in node.types if (kind := kind_of(t)) is not None), None)
    if isinstance(node, msgspec.inspect.Metadata):
        declared = (node.extra or {}).get("decimal")
        return tuple(declared) if declared is not None else kind_of(node.type)
    if isinstance(node, msgspec.inspect.DateTimeType):
        return "datetime"
    return (24, 8) if isinstance(node, msgspec.inspect.DecimalType) else None


def decimal_component(precision: int, scale: int) -> tuple[str, dict[str, Any]]:
    """The shared component of a request's DECIMAL(precision, scale) field."""
    if (precision, scale) == (24, 8):
        return "DecimalInput", DECIMAL_INPUT_SCHEMA
    return f"DecimalInput{precision}x{scale}", decimal_input_schema(precision - scale, scale)


def with_kinds(
    schema: dict[str, Any], kinds: dict[str, Any], request: bool, components: dict[str, Any], ref_template: str
) -> dict[str, Any]:
    """A Struct's component with each datetime and decimal field's string schema made exact."""
    properties = dict(schema["properties"])
    for name, kind in kinds.items():
        if kind == "datetime":
            exact: dict[str, Any] = TIMESTAMP_SCHEMA
        elif request:
            component, exact = decimal_component(*kind)
            components.setdefault(component, {"title": component, **exact})
            exact = {"$ref": ref_template.format(name=component)}
        else:
            exact = DECIMAL_REPLY_SCHEMA
        prop = properties[name]
        branches = [exact if b.get("type") == "string" else b for b in prop.get("anyOf", [])]
        rest = {k: v for k, v in prop.items() if k not in ("type", "format")}
        properties[name] = {**prop, "anyOf": branches} if branches else {**rest, **exact}
    return {**schema, "properties": properties}


def schemas(
    requests: list[Any], replies: list[Any], ref_template: str = DEFS
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(schema per request type, schema per reply type, shared components). Requests and
    replies are generated apart: a decimal reads differently in each (string or number in,
    fixed-point text out). A Struct used on both sides must then come out the same."""
    done: list[Any] = []
    components: dict[str, Any] = {name: {"title": name, **schema} for name, schema in SHARED.items()}
    for types_, decimal in ((requests, DECIMAL_INPUT_SCHEMA), (replies, DECIMAL_REPLY_SCHEMA)):
        found, defs = msgspec.json.schema_components(types_, ref_template=ref_template) if types_ else ((), {})
        done.append([rewrite(s, decimal, ref_template) for s in found])
        kinds = typed_fields(types_)
        for name, schema in defs.items():
            exact = with_kinds(schema, kinds.get(name, {}), decimal is DECIMAL_INPUT_SCHEMA, components, ref_template)
            schema = rewrite(exact, decimal, ref_template)  # noqa: PLW2901
            if components.setdefault(name, schema) != schema:
                raise ValueError(f"{name} is both a request and a reply, and they differ (a decimal field?)")
    errors = components.get("ErrorBody")
    if errors is not None:  # the codes the service can send, not any string
        errors["properties"]["code"] = {"type": "string", "enum": list(error_codes())}
    return done[0], done[1], dict(sorted(components.items()))


def document() -> dict[str, Any]:
    table = subjects()
    requests = [req for req, _ in table.values() if req is not None]
    replies = [rep for _, rep in table.values() if rep is not None] + [ErrorReply, *events().values()]
    request_schemas, reply_schemas, components = schemas(requests, replies)
    by_request = dict(zip(map(id, requests), request_schemas, strict=True))
    by_reply = dict(zip(map(id, replies), reply_schemas, strict=True))

    def entry(request: Any, reply: Any) -> dict[str, Any]:
        return {
            "request": None if request is None else by_request[id(request)],
            "reply": {} if reply is None else by_reply[id(reply)],
        }

    return {
        "$comment": "Generated by scripts/gen_schemas.py from the code; do not edit by hand.",
        "notes": [
            "request null: the body is ignored (send nothing or {}).",
            "Decimals: requests take a string or a number; replies carry fixed-point text.",
            "created_at, updated_at and other timestamps are RFC 3339 strings.",
            "Any subject may instead reply with `error` (headers Nats-Service-Error-Code and Nats-Service-Error).",
            "events: the body of each message of the EKKO_EVENTS stream, by entity.",
            "A list reply's items are whole records unless the request sent `select` (only those fields)"
            " or `include` (the parent record, or null, under each include name).",
        ],
        "subjects": {subject: entry(req, rep) for subject, (req, rep) in table.items()},
        "error": by_reply[id(ErrorReply)],
        "error_codes": error_codes(),
        "events": {name: by_reply[id(event)] for name, event in events().items()},
        "$defs": components,
    }


def render() -> bytes:
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"


def write_or_check(output: Path, content: bytes, argv: list[str], command: str) -> int:
    """Write `content` to `output`, or with --check exit 1 when the file differs from it."""
    if "--check" in argv:
        if output.exists() and output.read_bytes() == content:
            return 0
        print(f"{output} is out of date: run {command}", file=sys.stderr)
        return 1
    output.write_bytes(content)
    print(f"wrote {output} ({len(content)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(write_or_check(OUTPUT, render(), sys.argv[1:], "python scripts/gen_schemas.py"))
