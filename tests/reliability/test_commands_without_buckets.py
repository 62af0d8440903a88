"""Every `ekko` command treats a missing KV bucket as empty and never ends in a traceback
(issue 9, item 7): run against a NATS with no buckets at all, then with each of the 8
entity buckets missing in turn. One DuckDB, reset between rounds; in-process, so a
traceback would fail the test itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import bcrypt
import nats
import pytest

from service.cli import main
from service.cli.common import EXIT_FAILED, run_command
from service.model.registry import ENTITY_ORDER
from tests import legacy_data as legacy
from tests.natsd import NatsServer

HASH = bcrypt.hashpw(b"legacy password", bcrypt.gensalt(4)).decode()
RECORDS = {  # one legacy record per bucket, parents first
    "users": legacy.user(1, HASH),
    "wallets": legacy.wallet(1),
    "alerts": legacy.alert(1, 1),
    "wallet_balances": legacy.wallet_balance(1, 1),
    "alert_rules": legacy.alert_rule(1, 1),
    "workflows": legacy.workflow(1, 1),
    "workflow_executions": legacy.workflow_execution(1, 1),
    "agents": legacy.agent(1, 1),
}
# (argv, exit codes allowed). 1 is a finding, not a crash: a child whose parent's bucket is
# missing cannot be migrated, and verify differs while KV holds legacy-format values.
COMMANDS: list[tuple[list[str], set[int]]] = [
    (["migrate", "--check-only", "--json"], {0, 1}),
    (["migrate", "--no-backup", "--json"], {0, 1}),
    (["migrate", "--validate", "--json"], {0, 1}),
    (["db", "backup", "--json"], {0}),
    (["sync", "verify", "--json"], {0, 1}),
    (["sync", "repair", "--json"], {0}),
    (["sync", "verify", "--json"], {0}),  # repaired: in sync
]


async def legacy_kv(url: str, missing: set[str]) -> None:
    """Every bucket deleted, then the ones not `missing` filled with one legacy record."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in ENTITY_ORDER:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_key_value(name)
    for name, record in RECORDS.items():
        if name not in missing:
            await legacy.put_all(js, name, [(record["id"], legacy.encoded(record))])
    await nc.drain()


@pytest.fixture
def env(nats_server: NatsServer, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> NatsServer:
    monkeypatch.setenv("NATS_URL", nats_server.url)
    monkeypatch.setenv("DUCKDB_PATH", str(db_path))
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    return nats_server


@pytest.mark.parametrize("missing", ["every bucket", *ENTITY_ORDER])
def test_every_command_treats_missing_buckets_as_empty(
    missing: str, env: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = set(ENTITY_ORDER) if missing == "every bucket" else {missing}
    asyncio.run(legacy_kv(env.url, gone))
    assert main(["db", "reset", "--yes", "--no-backup"]) == 0
    capsys.readouterr()
    for argv, allowed in COMMANDS:
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in allowed, f"ekko {' '.join(argv)} -> {code}: {err}"
        assert "Traceback" not in err and "unexpected" not in err, err
        report = json.loads(out)  # every command finished with its report
        if argv[:2] == ["migrate", "--no-backup"]:
            assert report["status"] == ("up_to_date" if missing == "every bucket" else "migrated"), report
            migrated = {b["bucket"]: b["migrated"] for b in report["buckets"]}
            assert all(migrated[name] == 0 for name in gone)
            if "users" not in gone:
                assert report["kv_rewritten"]["users"] == 1  # the hash left KV


def test_an_unexpected_error_is_one_line_and_exit_1_with_the_traceback_only_at_debug(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise RuntimeError("the disk said\nsomething odd")

    caplog.set_level(logging.INFO, logger="ekko")
    assert run_command(broken) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ekko: unexpected error: RuntimeError: the disk said something odd")
    assert not caplog.records  # nothing more above DEBUG
    caplog.set_level(logging.DEBUG, logger="ekko")
    assert run_command(broken) == EXIT_FAILED
    assert any(r.exc_info for r in caplog.records)  # the traceback, at DEBUG
