"""docs/ says what the code does: schemas.json is generated from the Structs and must be
current; subjects.md's tables list every subject, entity and required field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.model.registry import ENTITIES
from tests.support import assert_valid, load_generator, published

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas.json"
SUBJECTS_MD = ROOT / "docs" / "subjects.md"
ACTIONS = ("create", "get", "update", "delete", "list")


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The first table under `## heading`: first cell (backticks stripped) -> the other cells."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("|")][2:]  # skip header and rule
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return {c[0].strip("`"): c[1:] for c in cells}


def test_docs_schemas_json_is_generated_from_the_current_structs() -> None:
    assert SCHEMAS.read_bytes() == load_generator().render(), (
        "docs/schemas.json is stale: run python scripts/gen_schemas.py"
    )


def test_schemas_json_describes_every_subject_of_every_entity() -> None:
    subjects = json.loads(SCHEMAS.read_bytes())["subjects"]
    for name in ENTITIES:
        assert {f"ekko.{name}.{action}" for action in ACTIONS} <= set(subjects)


@pytest.mark.parametrize("name", list(ENTITIES))
def test_schemas_json_create_schema_requires_what_the_struct_requires(name: str) -> None:
    document = json.loads(SCHEMAS.read_bytes())
    ref = document["subjects"][f"ekko.{name}.create"]["request"]["$ref"].rsplit("/", 1)[1]
    required = [f.name for f in msgspec.structs.fields(ENTITIES[name].create) if f.required]
    assert document["$defs"][ref]["required"] == required
    assert document["$defs"][ref]["additionalProperties"] is False


def test_subjects_md_lists_every_subject_the_schemas_describe() -> None:
    crud = re.compile(rf"^ekko\.(?:{'|'.join(ENTITIES)})\.({'|'.join(ACTIONS)})$")
    documented = {crud.sub(r"ekko.<entity>.\1", s) for s in json.loads(SCHEMAS.read_bytes())["subjects"]}
    assert set(table_rows(SUBJECTS_MD.read_text(), "All subjects")) == documented


def test_subjects_md_entity_table_names_each_entitys_required_fields_and_parents() -> None:
    rows = table_rows(SUBJECTS_MD.read_text(), "Entities")
    assert list(rows) == list(ENTITIES), "one row per entity, in registry (parents-first) order"
    for name, spec in ENTITIES.items():
        required, parents, _unique = rows[name]
        assert re.findall(r"`(\w+)`", required) == [f.name for f in msgspec.structs.fields(spec.create) if f.required]
        assert re.findall(r"`(\w+)` -> (\w+)", parents) == [(fk.field, fk.parent) for fk in spec.foreign_keys]


def test_schemas_json_describes_exactly_the_subjects_the_service_answers() -> None:
    from service.app import Ekko
    from service.config import Settings

    app = Ekko(Settings(), "nats://127.0.0.1:1")  # built, never started: no connection
    answered = {sub._resolved_subject_string for sub in app.broker.subscribers}
    discovery = {subject for subject in answered if subject.startswith("$SRV.")}  # the NATS protocol's own
    assert answered - discovery == set(json.loads(SCHEMAS.read_bytes())["subjects"])


# -- the JSON of docs/subjects.md's examples matches docs/schemas.json ----------------------
NATS_REQ = re.compile(r"nats req ('[^']*'|\S+)\s+'([^']*)'")
HEADER = re.compile(r"^\s*([\w-]+): (.*)$")


def request_examples(markdown: str) -> list[tuple[str, str, list[str]]]:
    """(subject, request body text, the `# ` comment lines after it: its reply) of every
    `nats req` in the ```sh blocks."""
    examples: list[tuple[str, str, list[str]]] = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        current: list[str] | None = None
        for line in block.replace("\\\n", " ").splitlines():
            if match := NATS_REQ.search(line):
                current = []
                examples.append((match.group(1).strip("'"), match.group(2), current))
            elif line.startswith("#") and current is not None:
                current.append(line[1:])
            else:
                current = None
    return examples


def reply_of(lines: list[str]) -> tuple[dict[str, str], Any]:
    """(headers, JSON body) of a reply written as comment lines; (?, None) when there is none."""
    headers = dict(m.groups() for line in lines if (m := HEADER.match(line)))
    text = " ".join(line for line in lines if not HEADER.match(line)).strip()
    return headers, (json.loads(text) if text else None)


def test_every_request_and_reply_example_in_subjects_md_matches_the_schemas() -> None:
    documented, asyncapi = published()["subjects"], json.loads((ROOT / "docs" / "asyncapi.json").read_bytes())
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    examples = request_examples(SUBJECTS_MD.read_text())
    replies = errors = 0
    for subject, body, comment in examples:
        request = json.loads(body) if body else None
        if subject not in documented:  # the discovery subjects: in the AsyncAPI document only
            assert subject in addresses and request is None, subject
            continue
        headers, reply = reply_of(comment)
        if reply is None or "error" not in reply:  # a request shown failing may break the schema
            assert_valid(documented[subject]["request"], request, f"the example request to {subject}")
        if reply is None:
            continue
        if "error" in reply:
            assert_valid(published()["error"], reply, f"the example error of {subject}")
            code = headers.get("Nats-Service-Error-Code")
            assert code is None or int(code) == published()["error_codes"][reply["error"]["code"]]
            errors += 1
        else:
            assert_valid(documented[subject]["reply"], reply, f"the example reply of {subject}")
            replies += 1
    assert len(examples) >= 15 and replies >= 2 and errors >= 2, (len(examples), replies, errors)


def test_the_error_example_in_subjects_md_matches_the_error_schema() -> None:
    (block,) = re.findall(r"```\n(Nats-Service-Error-Code.*?)```", SUBJECTS_MD.read_text(), re.S)
    head, body = block.split("\n\n", 1)
    headers, reply = dict(HEADER.match(line).groups() for line in head.splitlines()), json.loads(body)  # type: ignore[union-attr]
    assert_valid(published()["error"], reply, "the error example")
    assert int(headers["Nats-Service-Error-Code"]) == published()["error_codes"][reply["error"]["code"]]
    assert headers["Nats-Service-Error"] == reply["error"]["message"]
