"""The client knows every entity of the registry (it cannot import the registry: that needs
the server's dependencies), and docs/subjects.md shows each one beside its `nats req`."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from ekko_client import EkkoClient, Entity
from service.model.registry import ENTITIES

SUBJECTS_MD = Path(__file__).resolve().parents[2] / "docs" / "subjects.md"


@pytest.mark.parametrize("name", list(ENTITIES))
def test_the_client_has_every_entity_with_its_structs(name: str) -> None:
    spec = ENTITIES[name]
    entity = getattr(EkkoClient(NATS()), name, None)
    assert isinstance(entity, Entity), f"EkkoClient has no `{name}`: add it in client/ekko_client/client.py"
    assert entity.subject == name
    for ours, theirs in ((entity.record_type, spec.record), (entity.create_type, spec.create)):
        assert ours.__name__ == theirs.__name__
        assert [f.name for f in msgspec.structs.fields(ours)] == [f.name for f in msgspec.structs.fields(theirs)]


@pytest.mark.parametrize("name", list(ENTITIES))
def test_subjects_md_shows_the_client_beside_nats_req_for_every_entity(name: str) -> None:
    rows = [line for line in SUBJECTS_MD.read_text().splitlines() if line.startswith(f"| `{name}` |")]
    assert any(f"nats req ekko.{name}.create" in row and f"await ekko.{name}.create(" in row for row in rows), name


ASYNCAPI = SUBJECTS_MD.parent / "asyncapi.json"
# Subjects the tables above this one already show: entity CRUD, health, admin, events, $SRV.
SHOWN_ELSEWHERE = ("create", "get", "update", "delete", "list", "authenticate", "health", "metrics")


def query_subjects() -> list[str]:
    """Every served `ekko.*` subject that is neither entity CRUD nor health, admin or events:
    the reports, search and what comes after them."""
    channels = json.loads(ASYNCAPI.read_text())["channels"].values()
    addresses = [channel.get("address") or "" for channel in channels]
    return [
        a
        for a in addresses
        if a.startswith("ekko.")
        and a.split(".")[1] not in ("admin", "events")
        and a.rsplit(".", 1)[-1] not in SHOWN_ELSEWHERE
    ]


def test_the_query_subjects_are_found() -> None:
    assert {"ekko.reports.alert_stats", "ekko.search"} <= set(query_subjects())


@pytest.mark.parametrize("subject", query_subjects())
def test_subjects_md_shows_the_client_call_beside_nats_req_for_every_query(subject: str) -> None:
    rows = [line for line in SUBJECTS_MD.read_text().splitlines() if line.startswith(f"| `{subject}` |")]
    assert any(f"nats req {subject} " in row and "await ekko." in row for row in rows), subject
    call = subject.removeprefix("ekko.").split(".")
    target: object = EkkoClient(NATS())
    for name in call:
        target = getattr(target, name, None)
        assert target is not None, f"EkkoClient has no `{'.'.join(call)}`"
    assert callable(target)
