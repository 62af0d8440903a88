"""A Node.js client (the official `nats` package, plain JSON) drives the whole CRUD API:
nothing about ekko's subjects needs Python. See tests/e2e/js/crud.mjs. What it creates
and edits comes from the registry and tests/fixtures/entities.json (a plan file)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.factories import MAX_N, PASSWORD, edit_of, payload_of
from tests.natsd import NatsServer
from tests.support import JS_DIR, installed_node

STEPS = ["create", "get", "update", "list", "delete"]


def plan(path: Path) -> Path:
    """What crud.mjs runs, from the registry (order, parents) and tests/fixtures/entities.json
    (payloads, edits); one random record number so a second run on one database fits."""
    n = random.randrange(1, MAX_N)
    entities = [
        {
            "name": name,
            "create": payload_of(name, n),
            "parents": {fk.field: fk.parent for fk in spec.foreign_keys},
            "update": dict([edit_of(name)]),
        }
        for name, spec in ENTITIES.items()
    ]
    users = payload_of("users", n)
    path.write_text(json.dumps({"entities": entities, "login": {"email": users["email"], "password": PASSWORD}}))
    return path


async def run_crud(url: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """Runs crud.mjs without blocking the event loop the service answers on."""
    proc = await asyncio.create_subprocess_exec(
        installed_node(),
        "crud.mjs",
        url,
        str(plan(tmp_path / "plan.json")),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    try:
        summary = json.loads(out)
    except ValueError:
        pytest.fail(f"crud.mjs printed no JSON summary (exit {proc.returncode}):\n{out.decode()}\n{err.decode()}")
    return proc.returncode, summary, err.decode()


async def test_a_node_client_creates_reads_updates_lists_and_deletes_every_entity(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    code, summary, stderr = await run_crud(nats_server.url, tmp_path)
    assert summary["failures"] == [], stderr
    assert code == 0 and summary["ok"] is True
    assert summary["entities"] == dict.fromkeys(ENTITIES, STEPS), "crud.mjs must cover every registered entity"
    assert summary["extras"] == ["users.authenticate", "health"]


async def test_a_node_client_gets_error_headers_and_bodies_for_bad_input(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    _, summary, _ = await run_crud(nats_server.url, tmp_path)
    checked = set(summary["errors_checked"])
    for name in ENTITIES:
        assert {
            f"{name}.create with invalid JSON",
            f"{name}.create with an unknown field",
            f"{name}.update with an unknown field",
            f"{name}.update with a stale expected_version",
            f"{name}.get after delete",
        } <= checked
    assert "users.authenticate with a wrong password" in checked


async def test_the_node_client_fails_when_no_service_answers(nats_server: NatsServer, tmp_path: Path) -> None:
    code, summary, _ = await run_crud(nats_server.url, tmp_path)
    assert code != 0
    assert summary["ok"] is False and summary["failures"]
    assert summary["entities"]["users"] == []
