"""A Node.js client (the official `nats` package, plain JSON) drives the whole CRUD API:
nothing about ekko's subjects needs Python. See tests/e2e/js/crud.mjs."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.natsd import NatsServer

JS_DIR = Path(__file__).resolve().parent / "js"
STEPS = ["create", "get", "update", "list", "delete"]
NODE_MISSING = "node and npm (Node.js 20+) are needed for the JavaScript client test"


def tool(name: str) -> str:
    """The path of node or npm; the test is skipped (with the reason) when either is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(NODE_MISSING)
    path = shutil.which(name)
    assert path is not None
    return path


@functools.cache
def installed_node() -> str:
    """node, with tests/e2e/js's packages installed (once; package-lock.json pins them).
    Skips the calling test when node or npm is not on PATH."""
    node = tool("node")
    if not (JS_DIR / "node_modules" / "nats").is_dir():
        done = subprocess.run(
            [tool("npm"), "install", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return node


async def run_crud(url: str) -> tuple[int, dict[str, Any], str]:
    """Runs crud.mjs without blocking the event loop the service answers on."""
    proc = await asyncio.create_subprocess_exec(
        installed_node(), "crud.mjs", url, cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    try:
        summary = json.loads(out)
    except ValueError:
        pytest.fail(f"crud.mjs printed no JSON summary (exit {proc.returncode}):\n{out.decode()}\n{err.decode()}")
    return proc.returncode, summary, err.decode()


async def test_a_node_client_creates_reads_updates_lists_and_deletes_every_entity(
    ekko: Ekko, nats_server: NatsServer
) -> None:
    code, summary, stderr = await run_crud(nats_server.url)
    assert summary["failures"] == [], stderr
    assert code == 0 and summary["ok"] is True
    assert summary["entities"] == dict.fromkeys(ENTITIES, STEPS), "crud.mjs must cover every registered entity"
    assert summary["extras"] == ["users.authenticate", "health"]


async def test_a_node_client_gets_error_headers_and_bodies_for_bad_input(ekko: Ekko, nats_server: NatsServer) -> None:
    _, summary, _ = await run_crud(nats_server.url)
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


async def test_the_node_client_fails_when_no_service_answers(nats_server: NatsServer) -> None:
    code, summary, _ = await run_crud(nats_server.url)
    assert code != 0
    assert summary["ok"] is False and summary["failures"]
    assert summary["entities"]["users"] == []
