"""`ekko migrate` / `ekko db` against a real nats-server holding legacy-shaped KV data
and a real DuckDB file: every quirk of the legacy format, accounted for key by key."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import bcrypt
import duckdb
import msgspec
import nats
import pytest
from nats.js.api import KeyValueConfig

from schema.balances import LatestRequest
from service.app import Ekko
from service.cli.common import run_command
from service.cli.migrate import add_commands
from service.config import Settings
from service.migration import auto_migrate, validate
from service.model.errors import Unauthorized
from service.model.registry import ENTITIES, ENTITY_ORDER
from service.model.rules import password_matches
from service.store.database import Database
from service.store.repository import Repository
from service.usecases.auth import AuthService
from tests import legacy_data as legacy
from tests.client import Client
from tests.natsd import NatsServer, free_port
from tests.service_process import start_service, wait_ready

PASSWORD = b"pw"
ADDRESS = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"
HASH = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode()
uid = legacy.uid


# -- the legacy data: every quirk of docs/legacy-format.md ----------------------------
async def seed_legacy(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    put = legacy.put_all
    await put(
        js,
        "users",
        [
            (uid("users", 1), legacy.encoded(legacy.user(1, HASH))),
            (uid("users", 2), legacy.encoded({**legacy.user(2, HASH), "email": "Dup@Example.com"})),
            # Same email, other case, created later: the second one is the duplicate.
            (uid("users", 3), legacy.encoded({**legacy.user(3, HASH), "email": "dup@example.com"})),
        ],
    )
    wallets = await legacy.bucket(js, "wallets")
    await put(
        js,
        "wallets",
        [
            (uid("wallets", 1), legacy.encoded({**legacy.wallet(1), "address": ADDRESS.lower(), "balance": 0.1})),
            # The same address in another case, on the same chain: a duplicate.
            (uid("wallets", 2), legacy.encoded({**legacy.wallet(2), "address": ADDRESS.upper().replace("0X", "0x")})),
            (uid("wallets", 3), legacy.encoded({**legacy.wallet(3), "address": "0xnot-an-address"})),
            (uid("wallets", 7), b'{"id": "broken'),
        ],
    )
    for name in ("first", "second", "third"):  # several revisions: the latest is the record
        await wallets.put(uid("wallets", 4), legacy.encoded({**legacy.wallet(4), "name": name, "created_at": None}))
    await wallets.put(uid("wallets", 5), legacy.encoded(legacy.wallet(5)))
    await wallets.delete(uid("wallets", 5))
    await wallets.put(uid("wallets", 6), legacy.encoded(legacy.wallet(6)))
    await wallets.purge(uid("wallets", 6))
    await put(
        js,
        "alerts",
        [
            (uid("alerts", 1), legacy.encoded(legacy.alert(1, 1))),
            (uid("alerts", 2), legacy.encoded(legacy.alert(2, 99))),  # its wallet never existed
            (uid("alerts", 3), legacy.encoded(legacy.alert(3, 3))),  # its wallet failed to migrate
        ],
    )
    await put(js, "wallet_balances", [(uid("wallet_balances", 1), legacy.encoded(legacy.wallet_balance(1, 1)))])
    await put(js, "alert_rules", [(uid("alert_rules", 1), legacy.encoded(legacy.alert_rule(1, 1)))])
    await put(js, "workflows", [(uid("workflows", 1), legacy.encoded(legacy.workflow(1, 1)))])
    await put(
        js,
        "workflow_executions",
        [
            (uid("workflow_executions", 1), legacy.encoded(legacy.workflow_execution(1, 1))),
        ],
    )
    # No agents bucket (the old API created buckets lazily); an out-of-scope nodes bucket.
    await put(js, "nodes", [("node-1", b'{"id": "node-1", "url": "http://node"}')])
    await nc.drain()


EXPECTED = {  # bucket: (keys, migrated, skipped as deleted, failed)
    "users": (3, 2, 0, 1),
    "wallets": (7, 2, 2, 3),
    "alerts": (3, 1, 0, 2),
    "wallet_balances": (1, 1, 0, 0),
    "alert_rules": (1, 1, 0, 0),
    "workflows": (1, 1, 0, 0),
    "workflow_executions": (1, 1, 0, 0),
}


# -- helpers -------------------------------------------------------------------------
@pytest.fixture
def env(settings: Settings, nats_server: NatsServer) -> Settings:
    asyncio.run(seed_legacy(nats_server.url))
    return settings.with_(nats_url=nats_server.url)


class Run(NamedTuple):
    status: int
    out: Any  # the decoded --json output, None when there was none
    err: str


def ekko(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> Run:
    """Run `ekko <argv> --json` as the CLI does."""
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(required=True))
    args = parser.parse_args([*argv, "--json"])
    capsys.readouterr()
    status = run_command(lambda: args.func(args, settings))
    captured = capsys.readouterr()
    return Run(status, json.loads(captured.out) if captured.out.strip() else None, captured.err)


def buckets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["bucket"]: b for b in report["buckets"]}


def content(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, password hashes included."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY id').fetchall() for t in ENTITY_ORDER}
    finally:
        con.close()


def kv_state(url: str) -> dict[str, tuple[int, int]]:
    """(messages, last sequence) of every stream: any write changes it."""

    async def state() -> dict[str, tuple[int, int]]:
        nc = await nats.connect(url)
        try:
            infos = await nc.jetstream().streams_info()
            return {i.config.name: (i.state.messages, i.state.last_seq) for i in infos}
        finally:
            await nc.drain()

    return asyncio.run(state())


def with_db(path: Path, work: Any) -> Any:
    db = Database(path, 1).open()
    try:
        return db.transaction(work)
    finally:
        db.close()


def backups(settings: Settings) -> list[Path]:
    root = settings.data_dir / "backups"
    return sorted(root.iterdir()) if root.exists() else []


# -- check ---------------------------------------------------------------------------
def test_check_only_reports_what_a_migration_would_do_and_changes_nothing(capsys, env: Settings) -> None:
    kv_before = kv_state(env.nats_url)
    status, report, _ = ekko(capsys, env, "migrate", "--check-only")
    assert status == 1  # some records would fail
    assert report["mode"] == "check" and report["would_change"] and report["database_empty"]
    counts = buckets(report)
    assert counts["wallets"]["keys"] == 7 and counts["wallets"]["bytes"] > 0
    assert counts["wallets"]["migrated"] == 2 and counts["wallets"]["failed"] == 3
    assert all(not counts[name]["present"] for name in ENTITY_ORDER if name not in EXPECTED)
    assert report["ignored_buckets"] == ["nodes"]
    assert report["tables"] == dict.fromkeys(ENTITY_ORDER, 0)
    inserted, failed = (sum(c[i] for c in EXPECTED.values()) for i in (1, 3))
    assert f"would insert {inserted} records; {failed} records would fail" in report["message"]
    assert not env.duckdb_path.exists()
    assert kv_state(env.nats_url) == kv_before


# -- migrate -------------------------------------------------------------------------
def test_migrate_accounts_for_every_key_of_every_bucket(capsys, env: Settings) -> None:
    status, report, _ = ekko(capsys, env, "migrate")
    assert status == 1 and report["status"] == "migrated"  # 1: some records failed
    counts = buckets(report)
    for name, (keys, migrated, deleted, failed) in EXPECTED.items():
        b = counts[name]
        assert (b["keys"], b["migrated"], b["skipped_deleted"], b["failed"]) == (keys, migrated, deleted, failed), name
        assert b["migrated"] + b["skipped_deleted"] + b["failed"] == b["keys"], name
    for name in set(ENTITY_ORDER) - set(EXPECTED):  # no bucket (agents: the old API made buckets lazily)
        assert not counts[name]["present"] and counts[name]["failed"] == 0, name
    assert report["validation"]["ok"]
    assert content(env.duckdb_path)["wallets"] and len(backups(env)) == 1


def test_each_record_that_cannot_be_migrated_is_listed_with_its_reason(capsys, env: Settings) -> None:
    _, report, _ = ekko(capsys, env, "migrate")
    reasons = {(f["bucket"], f["key"]): f["reason"] for b in report["buckets"] for f in b["failures"]}
    assert "duplicate" in reasons["users", uid("users", 3)] and uid("users", 2) in reasons["users", uid("users", 3)]
    assert "duplicate" in reasons["wallets", uid("wallets", 2)]
    assert "must be 0x followed by 40 hex digits" in reasons["wallets", uid("wallets", 3)]
    assert "not valid JSON" in reasons["wallets", uid("wallets", 7)]
    assert reasons["alerts", uid("alerts", 2)] == f"related_wallet_id: wallets {uid('wallets', 99)} does not exist"
    assert "could not be migrated" in reasons["alerts", uid("alerts", 3)]


def test_migrated_rows_hold_the_latest_revision_mapped_to_todays_fields(capsys, env: Settings) -> None:
    _, report, _ = ekko(capsys, env, "migrate")

    def read(cur: Any) -> dict[str, Any]:
        return {
            "w1": Repository(ENTITIES["wallets"], cur).get(uid("wallets", 1)),
            "w4": Repository(ENTITIES["wallets"], cur).get(uid("wallets", 4)),
            "run": Repository(ENTITIES["workflow_executions"], cur).get(uid("workflow_executions", 1)),
            "balance": Repository(ENTITIES["wallet_balances"], cur).get(uid("wallet_balances", 1)),
        }

    rows = with_db(env.duckdb_path, read)
    assert rows["w1"].balance == Decimal("0.10000000") and rows["w1"].version == 1
    migration_time = report["started_at"].replace("Z", "+00:00")
    assert rows["w1"].updated_at.isoformat() == migration_time  # null -> the migration time
    assert rows["w4"].created_at.isoformat() == rows["w4"].updated_at.isoformat() == migration_time
    assert rows["w4"].name == "third"
    assert rows["run"].started_at.tzinfo is not None and rows["run"].error_message is None
    assert rows["balance"].timestamp.isoformat().startswith(legacy.naive(1))


async def test_a_legacy_user_can_still_log_in_with_the_migrated_hash(env: Settings) -> None:
    db = Database(env.duckdb_path, 2).open()
    nc = await nats.connect(env.nats_url)
    try:
        await auto_migrate(env, db, nc)
        users = ENTITIES["users"]
        found = await db.read(lambda cur: Repository(users, cur).secret("password_hash", "email", "user1@example.com"))
        user = await AuthService(db, bcrypt_rounds=4).authenticate("User1@Example.com", PASSWORD.decode())
        with pytest.raises(Unauthorized):
            await AuthService(db, bcrypt_rounds=4).authenticate("user1@example.com", "wrong")
    finally:
        await nc.drain()
        db.close()
    assert found is not None and found[1] == HASH and password_matches(PASSWORD.decode(), found[1])
    assert user.id == uid("users", 1)


def test_running_it_again_changes_nothing(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    before = content(env.duckdb_path)
    status, report, _ = ekko(capsys, env, "migrate")
    assert report["status"] == "up_to_date" and not report["would_change"]
    assert status == 1  # the same six records still cannot be migrated
    assert all(b["migrated"] == 0 for b in report["buckets"])
    assert content(env.duckdb_path) == before
    assert len(backups(env)) == 1  # nothing to do, nothing backed up


def test_a_database_holding_other_data_is_refused_without_force(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    with_db(env.duckdb_path, lambda cur: cur.execute("UPDATE wallets SET name = 'edited in DuckDB'"))
    before = content(env.duckdb_path)
    status, report, _ = ekko(capsys, env, "migrate")
    assert status == 1 and report["status"] == "refused" and "--force" in report["message"]
    b = buckets(report)["wallets"]
    assert b["pending"] == 2
    assert b["migrated"] + b["unchanged"] + b["pending"] + b["skipped_deleted"] + b["failed"] == b["keys"]
    assert content(env.duckdb_path) == before


def test_force_upserts_kv_wins_for_its_keys_and_nothing_else_is_deleted(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    extra = uid("wallets", 500)

    def diverge(cur: Any) -> None:
        cur.execute("UPDATE wallets SET name = 'edited in DuckDB', version = 7 WHERE id = ?", [uid("wallets", 4)])
        cur.execute("DELETE FROM alerts")
        cur.execute(
            "INSERT INTO wallets SELECT ? AS id, * EXCLUDE (id) REPLACE ('0x' || repeat('e', 40) AS address,"
            " '3:eth0x' || repeat('e', 40) AS unique_blockchain_symbol_address) FROM wallets WHERE id = ?",
            [extra, uid("wallets", 1)],
        )

    with_db(env.duckdb_path, diverge)
    created_before = content(env.duckdb_path)["wallets"]
    _, report, _ = ekko(capsys, env, "migrate", "--force")
    assert report["status"] == "migrated" and report["validation"]["ok"]
    assert (buckets(report)["wallets"]["updated"], buckets(report)["alerts"]["inserted"]) == (1, 1)
    after = {row[0]: row for row in content(env.duckdb_path)["wallets"]}
    w4 = Repository(ENTITIES["wallets"], duckdb.connect(":memory:")).to_record(after[uid("wallets", 4)])
    assert (w4.name, w4.version) == ("third", 1)  # KV wins
    assert extra in after  # not in KV, kept
    assert after[uid("wallets", 1)][1] == {r[0]: r for r in created_before}[uid("wallets", 1)][1]  # created_at kept


# -- backups -------------------------------------------------------------------------
def test_a_backup_restores_duckdb_and_kv_to_identical_content(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate", "--no-backup")
    assert not backups(env)
    status, info, _ = ekko(capsys, env, "db", "backup")
    assert status == 0 and info["buckets"]["wallets"] == 5 and info["buckets"]["nodes"] == 1
    saved_rows, saved_kv = content(env.duckdb_path), asyncio.run(_kv_values(env.nats_url))
    manifest = json.loads((Path(info["path"]) / "manifest.json").read_text())
    assert manifest["tables"]["wallets"] == 2 and all(len(d) == 64 for d in manifest["files"].values())

    ekko(capsys, env, "db", "reset", "--yes", "--no-backup")
    asyncio.run(_scribble_on_kv(env.nats_url))
    status, result, _ = ekko(capsys, env, "migrate", "--restore-backup", info["path"], "--restore-kv")
    assert status == 0 and result["tables"]["wallets"] == 2 and result["buckets"]["agents"] == 0
    assert content(env.duckdb_path) == saved_rows
    assert asyncio.run(_kv_values(env.nats_url)) == saved_kv


def test_a_damaged_backup_is_refused(capsys, env: Settings) -> None:
    _, info, _ = ekko(capsys, env, "db", "backup")
    (Path(info["path"]) / "kv" / "wallets.ndjson").write_text("{}")
    run = ekko(capsys, env, "migrate", "--restore-backup", info["path"])
    assert run.status == 1 and "kv/wallets.ndjson" in run.err


async def _kv_values(url: str) -> dict[str, dict[str, bytes]]:
    from service.migration import read_snapshot

    nc = await nats.connect(url)
    try:
        snapshot = await read_snapshot(nc.jetstream())
        return {name: b.values for name, b in snapshot.buckets.items()}
    finally:
        await nc.drain()


async def _scribble_on_kv(url: str) -> None:
    nc = await nats.connect(url)
    kv = await nc.jetstream().key_value("wallets")
    await kv.put(uid("wallets", 1), b'{"changed": true}')
    await kv.delete(uid("wallets", 4))
    await kv.put("new-key", b"{}")
    agents = await nc.jetstream().create_key_value(KeyValueConfig(bucket="agents"))  # absent at backup time
    await agents.put(uid("agents", 1), b"{}")
    await nc.drain()


# -- reset ---------------------------------------------------------------------------
def test_reset_refuses_without_yes_when_there_is_no_terminal_to_ask_on(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    before = content(env.duckdb_path)
    run = ekko(capsys, env, "db", "reset")
    assert run.status == 1 and "--yes" in run.err
    assert content(env.duckdb_path) == before


def test_reset_with_yes_backs_up_then_empties_every_table(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate", "--no-backup")
    status, result, _ = ekko(capsys, env, "db", "reset", "--yes")
    assert status == 0 and result["schema_version"] >= 1
    assert result["backup"]["tables"]["wallets"] == 2
    assert all(not rows for rows in content(env.duckdb_path).values())


# -- validation ------------------------------------------------------------------------
async def test_validation_finds_differences_missing_rows_and_orphans(env: Settings) -> None:
    db = Database(env.duckdb_path, 2).open()
    nc = await nats.connect(env.nats_url)
    try:
        await auto_migrate(env, db, nc)

        def damage(cur: Any) -> None:
            cur.execute("UPDATE wallets SET balance = 42 WHERE id = ?", [uid("wallets", 4)])
            cur.execute("DELETE FROM workflows")  # its execution becomes an orphan, and it goes missing

        await db.write(lambda uow: damage(uow.cursor))
        result = await validate(db, nc.jetstream())
    finally:
        await nc.drain()
        db.close()
    tables = {c.table: c for c in result.tables}
    assert not result.ok
    assert tables["wallets"].sample_different == [uid("wallets", 4)]
    assert tables["workflows"].missing == 1
    assert tables["workflow_executions"].sample_orphans == [uid("workflow_executions", 1)]


def test_validate_alone_passes_after_a_migration(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    status, result, _ = ekko(capsys, env, "migrate", "--validate")
    assert status == 0 and result["ok"]
    assert {c["table"]: c["db_rows"] for c in result["tables"]}["wallets"] == 2


# -- automatic migration ---------------------------------------------------------------
async def test_auto_migrate_migrates_once_then_finds_nothing_to_do(env: Settings) -> None:
    db = Database(env.duckdb_path, 2).open()
    nc = await nats.connect(env.nats_url)
    try:
        first = await auto_migrate(env, db, nc)
        rows = await db.read(lambda cur: cur.execute("SELECT count(*) FROM wallets").fetchone()[0])
        second = await auto_migrate(env, db, nc)
    finally:
        await nc.drain()
        db.close()
    assert first.ok and second.ok and rows == 2
    assert len(backups(env)) == 1


async def test_the_service_migrates_before_serving_in_migration_mode(env: Settings) -> None:
    app = Ekko(env.with_(migration_mode=True), env.nats_url)
    await app.start()
    try:
        health = await app.status.database_health()
        latest = msgspec.json.decode(await app.balances.latest(LatestRequest()))["items"]
        newest = await app.db.read(
            lambda cur: cur.execute(
                "SELECT id FROM wallet_balances b WHERE NOT EXISTS (SELECT 1 FROM wallet_balances o"
                " WHERE o.wallet_id = b.wallet_id AND (o.timestamp, o.id) > (b.timestamp, b.id)) ORDER BY wallet_id"
            ).fetchall()
        )
    finally:
        await app.stop()
    assert health.tables["wallets"] == 2 and health.tables["users"] == 2
    assert health.integrity.ok and health.status == "healthy"
    # The migrated balance rows are derived from at once: each wallet's newest row is its latest.
    assert newest and [item["id"] for item in latest] == [row_id for (row_id,) in newest]


# -- the running service holds the file ------------------------------------------------
@pytest.fixture
def held_database(settings: Settings) -> Iterator[Path]:
    """Another process holding the DuckDB file, as `ekko run` does."""
    path = settings.duckdb_path
    path.parent.mkdir(parents=True, exist_ok=True)
    hold = f"import duckdb, time; con = duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    yield path
    holder.kill()
    holder.wait()


def test_a_database_held_by_something_else_is_reported_clearly(capsys, env: Settings, held_database: Path) -> None:
    """Not the service: nobody answers the admin subjects, and reset needs the file."""
    for argv in (("migrate",), ("migrate", "--check-only"), ("db", "backup")):
        run = ekko(capsys, env, *argv)
        assert run.status == 1, argv
        assert "nothing answers ekko.admin." in run.err and "Traceback" not in run.err
    run = ekko(capsys, env, "db", "reset", "--yes")
    assert run.status == 3
    assert "stop the service" in run.err


@pytest.fixture
def running_service(env: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ekko run` in its own process, holding the DuckDB file."""
    proc = start_service(env.nats_url, env.duckdb_path, tmp_path / "service.log")

    async def ready() -> None:
        nc = await nats.connect(env.nats_url)
        try:
            await wait_ready(Client(nc))
        finally:
            await nc.close()

    asyncio.run(ready())
    yield proc
    proc.terminate()
    proc.wait(30)


def test_commands_talk_to_the_running_service(capsys, env: Settings, running_service: Any) -> None:
    check = ekko(capsys, env, "migrate", "--check-only")
    assert "asking it over NATS (ekko.admin.migration.check)" in check.err
    assert check.out["mode"] == "check" and check.out["database_empty"] and check.out["would_change"]
    assert buckets(check.out)["wallets"]["keys"] == 7

    migrated = ekko(capsys, env, "migrate")
    assert migrated.status == 1  # the corrupt records failed, as offline
    assert migrated.out["status"] == "migrated" and migrated.out["backup"] is not None
    assert migrated.out["tables"]["wallets"] == 2 and migrated.out["tables"]["users"] == 2
    assert migrated.out["kv_rewritten"] == {"users": 2}
    forced = ekko(capsys, env, "migrate", "--force")
    assert forced.status == 1 and "force is refused while the service runs" in forced.err

    again = ekko(capsys, env, "migrate")
    assert again.out["status"] == "up_to_date", again.out["message"]
    validated = ekko(capsys, env, "migrate", "--validate")
    assert validated.status == 0 and validated.out["ok"], validated.out
    backup = ekko(capsys, env, "db", "backup")
    assert backup.status == 0 and (Path(backup.out["path"]) / "manifest.json").exists()
    assert backup.out["tables"]["wallets"] == 2

    async def served() -> tuple[Any, Any, Any]:
        nc = await nats.connect(env.nats_url)
        client = Client(nc)
        try:
            wallet = await client.request("ekko.wallets.get", {"id": uid("wallets", 1)})
            login = await client.request(
                "ekko.users.authenticate", {"email": legacy.user(1, HASH)["email"], "password": PASSWORD.decode()}
            )
            health = await client.request("ekko.database.health")
            return wallet, login, health
        finally:
            await nc.close()

    wallet, login, health = asyncio.run(served())
    assert wallet.ok and wallet.body["address"] == ADDRESS.lower()
    assert login.ok and login.body["id"] == uid("users", 1)
    assert health.body["integrity"]["ok"] is True

    reset = ekko(capsys, env, "db", "reset", "--yes")
    assert reset.status == 3 and "stop the service" in reset.err


def test_a_user_who_cannot_be_migrated_does_not_take_the_email_from_one_who_can(
    capsys, settings: Settings, nats_server: NatsServer
) -> None:
    async def seed() -> None:
        nc = await nats.connect(nats_server.url)
        no_hash = {**legacy.user(4, HASH), "email": "same@example.com", "hashed_password": None}
        later = {**legacy.user(5, HASH), "email": "Same@example.com"}  # created after user 4
        await legacy.put_all(
            nc.jetstream(),
            "users",
            [
                (uid("users", 4), legacy.encoded(no_hash)),
                (uid("users", 5), legacy.encoded(later)),
            ],
        )
        await nc.drain()

    asyncio.run(seed())
    run = ekko(capsys, settings.with_(nats_url=nats_server.url), "migrate", "--no-backup")
    users = buckets(run.out)["users"]
    assert (users["migrated"], users["failed"]) == (1, 1)
    assert "missing required field `hashed_password`" in users["failures"][0]["reason"]
    assert content(settings.duckdb_path)["users"][0][0] == uid("users", 5)


def test_no_password_hash_stays_in_kv_for_a_migrated_user_and_the_backup_keeps_the_legacy_value(
    capsys, env: Settings
) -> None:
    _, report, _ = ekko(capsys, env, "migrate")
    assert report["kv_rewritten"] == {"users": 2}

    async def users_bucket() -> dict[str, dict[str, Any]]:
        nc = await nats.connect(env.nats_url)
        try:
            kv = await nc.jetstream().key_value("users")
            return {key: json.loads((await kv.get(key)).value) for key in await kv.keys()}
        finally:
            await nc.drain()

    values = asyncio.run(users_bucket())
    assert "hashed_password" not in values[uid("users", 1)] and "password_hash" not in values[uid("users", 1)]
    assert values[uid("users", 1)]["email"] == "user1@example.com" and values[uid("users", 1)]["version"] == 1
    assert values[uid("users", 3)]["hashed_password"] == HASH, "a record that failed stays as it was"
    dump = [json.loads(line) for line in (backups(env)[0] / "kv" / "users.ndjson").read_text().splitlines()]
    assert all(json.loads(base64.b64decode(e["value"]))["hashed_password"] == HASH for e in dump)
    assert oct(backups(env)[0].stat().st_mode & 0o777) == "0o700", "legacy hashes: owner only"
    again = ekko(capsys, env, "migrate")
    assert again.out["status"] == "up_to_date", "the rewritten values still read as migrated"
    assert ekko(capsys, env, "migrate", "--validate").out["ok"]


def test_force_is_refused_while_changes_wait_in_the_outbox(capsys, env: Settings) -> None:
    ekko(capsys, env, "migrate")
    with_db(
        env.duckdb_path,
        lambda cur: (
            cur.execute("UPDATE wallets SET name = 'newer', version = 2 WHERE id = ?", [uid("wallets", 4)]),
            cur.execute(
                "INSERT INTO outbox (event_id, entity, entity_id, action, version, occurred_at, data)"
                " VALUES ('e1', 'wallets', ?, 'updated', 2, now(), '{}')",
                [uid("wallets", 4)],
            ),
        ),
    )
    before = content(env.duckdb_path)
    status, report, _ = ekko(capsys, env, "migrate", "--force")
    assert status == 1 and report["status"] == "refused"
    assert "1 changes in the outbox have not reached KV yet" in report["message"]
    assert content(env.duckdb_path) == before


def test_without_nats_migrate_says_so_and_backup_keeps_duckdb_only(capsys, settings: Settings) -> None:
    offline = settings.with_(nats_url=f"nats://127.0.0.1:{free_port()}")
    run = ekko(capsys, offline, "migrate", "--check-only")
    assert run.status == 4 and "cannot reach NATS at" in run.err and "Traceback" not in run.err
    backup = ekko(capsys, offline, "db", "backup")
    assert backup.status == 0 and backup.out["buckets"] == {}
    assert "the KV buckets are not backed up" in backup.err


async def test_validate_on_the_service_waits_for_the_relay_and_says_so_when_it_cannot(ekko: Any) -> None:
    from schema.wallets import WalletCreate
    from service.model.errors import Unavailable

    create = ekko.services["wallets"].create
    await create(WalletCreate(blockchain_symbol="ETH", address="0x" + "1" * 40))
    await ekko.admin._relay_caught_up()  # published
    async with ekko.relay.paused():  # KV falls behind by the next change
        await create(WalletCreate(blockchain_symbol="ETH", address="0x" + "2" * 40))
        with pytest.raises(Unavailable, match="still has 1 changes to publish"):
            await ekko.admin._relay_caught_up(timeout=0.2)
    result = await ekko.admin.validate()  # the relay catches up first, so KV and DuckDB agree
    tables = {t.table: t for t in result.tables}
    assert result.ok and tables["wallets"].db_rows == tables["wallets"].kv_keys == 2
