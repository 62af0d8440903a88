"""A Node.js client (the official `nats` package, plain JSON) drives the whole CRUD API:
nothing about ekko's subjects needs Python. See tests/e2e/js/crud.mjs. What it creates
and edits comes from the registry and tests/fixtures/entities.json (a plan file). The
official NATS services client (`@nats-io/services`) finds ekko and reads its endpoints and
counts, as `nats micro ls|info|stats` does (tests/e2e/js/services.mjs). A Node.js consumer
decodes the change events: before and after, transaction, correlation id, headers
(tests/e2e/js/events.mjs)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from service import __version__
from service.app import Ekko
from service.model.registry import ENTITIES
from tests.client import Client
from tests.factories import MAX_N, PASSWORD, edit_of, payload_of
from tests.natsd import NatsServer
from tests.support import JS_DIR, installed_node

STEPS = ["create", "get", "update", "list", "delete"]
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas.json"


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


async def run_script(script: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """Runs a script of tests/e2e/js without blocking the event loop the service answers on."""
    proc = await asyncio.create_subprocess_exec(
        installed_node(), script, *args, cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    try:
        summary = json.loads(out)
    except ValueError:
        pytest.fail(f"{script} printed no JSON summary (exit {proc.returncode}):\n{out.decode()}\n{err.decode()}")
    assert proc.returncode is not None
    return proc.returncode, summary, err.decode()


async def run_crud(url: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    return await run_script("crud.mjs", url, str(plan(tmp_path / "plan.json")))


async def test_a_node_client_creates_reads_updates_lists_and_deletes_every_entity(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    code, summary, stderr = await run_crud(nats_server.url, tmp_path)
    assert summary["failures"] == [], stderr
    assert code == 0 and summary["ok"] is True
    assert summary["entities"] == dict.fromkeys(ENTITIES, STEPS), "crud.mjs must cover every registered entity"
    assert summary["extras"] == ["users.authenticate", "health"]


async def test_a_node_consumer_decodes_events_with_before_after_and_one_transaction_per_write(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    code, summary, stderr = await run_script(
        "events.mjs", nats_server.url_for("client"), str(plan(tmp_path / "plan.json")), nats_server.url_for("reader")
    )
    assert summary["failures"] == [], stderr
    assert (
        code == 0 and summary["ok"] is True and summary["events"] == 8
    )  # 3 creates, the balance row's wallet update, 1 update, 3 deletes
    # alerts and wallet_balances (in registry order), then the wallet: one tx, numbered 0..2 of 3
    assert summary["cascade"] == [["alerts", 0, 3], ["wallet_balances", 1, 3], ["wallets", 2, 3]]


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


# -- the NATS services protocol, through the official services client ------------------
def schema_name(ref: dict[str, str] | None) -> str | None:
    """`{"$ref": "#/$defs/Wallet"}` -> "Wallet"; None for an ignored body or an inline schema."""
    return ref["$ref"].rsplit("/", 1)[1] if ref and "$ref" in ref else None


async def test_the_nats_services_client_lists_describes_and_counts_ekko(
    ekko: Ekko, client: Client, nats_server: NatsServer
) -> None:
    wallet = await client.ok("ekko.wallets.create", {"blockchain_symbol": "ETH", "address": "0x" + "ab" * 20})
    bad_json = await client.raw("ekko.wallets.create", b"{not json")
    for _ in range(3):
        await client.ok("ekko.wallets.get", {"id": wallet["id"]})
    missing = await client.request("ekko.wallets.get", {"id": "00000000-0000-4000-8000-000000000000"})
    assert (bad_json.status, missing.status) == (400, 404)

    code, seen, stderr = await run_script("services.mjs", nats_server.url)
    assert code == 0 and seen["ok"], seen.get("error", stderr)

    # ls: found by a bare $SRV.PING and by name, exactly once (one instance), as this process
    for ping in (seen["ping_all"], seen["ping"]):
        assert [(p["type"], p["name"], p["id"], p["version"]) for p in ping] == [
            ("io.nats.micro.v1.ping_response", "ekko", ekko.instance_id, __version__)
        ]
    metadata = seen["ping"][0]["metadata"]
    assert metadata["database"] == str(ekko.settings.duckdb_path) and Path(metadata["database"]).is_absolute()
    assert metadata["deployment"] == "ekko" and metadata["role"] == "writer"

    # info: every subject of docs/schemas.json, its queue group, and its schemas by name
    documented = json.loads(SCHEMAS.read_bytes())["subjects"]
    for info in (seen["info"], seen["info_by_id"]):
        assert len(info) == 1 and info[0]["type"] == "io.nats.micro.v1.info_response"
        assert "DuckDB" in info[0]["description"]
        endpoints = {e["subject"]: e for e in info[0]["endpoints"]}
        assert set(endpoints) == set(documented)
        for subject, endpoint in endpoints.items():
            assert endpoint["queue_group"] == "ekko"
            assert endpoint["metadata"].get("request_schema") == schema_name(documented[subject]["request"]), subject
            assert endpoint["metadata"].get("reply_schema") == schema_name(documented[subject]["reply"]), subject
        assert endpoints["ekko.wallets.create"]["metadata"] == {
            "request_schema": "WalletCreate",
            "reply_schema": "Wallet",
        }

    # stats: the counts this test produced (the services client made none of them)
    for stats in (seen["stats"], seen["stats_by_id"]):
        assert len(stats) == 1 and stats[0]["type"] == "io.nats.micro.v1.stats_response"
        assert stats[0]["id"] == ekko.instance_id and stats[0]["started"].endswith("Z")
        counted = {e["subject"]: e for e in stats[0]["endpoints"]}
        assert set(counted) == set(documented)
        get, create = counted["ekko.wallets.get"], counted["ekko.wallets.create"]
        assert (get["num_requests"], get["num_errors"]) == (4, 1)
        assert get["last_error"].startswith("404 ") and "not found" in get["last_error"]
        assert (create["num_requests"], create["num_errors"]) == (2, 1)
        assert create["last_error"].startswith("400 ")
        assert get["processing_time"] > 0 and get["average_processing_time"] == get["processing_time"] // 4
        idle = counted["ekko.agents.list"]
        assert (idle["num_requests"], idle["num_errors"], idle["last_error"], idle["processing_time"]) == (0, 0, "", 0)
