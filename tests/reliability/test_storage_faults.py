"""Storage faults answer clearly (issue 9, item 6): with the disk full or read-only, writes
get 503 `unavailable` with the cause, health says degraded with it, reads go on, and
writes resume once space returns, without a restart. A database that cannot be opened at
start is one line and exit status 5 (a read-only disk too). A failed checkpoint is logged as a failure. A KV
bucket deleted at run time shows in health and is recreated and refilled.

The full and read-only disks are a small tmpfs mounted for the test (root only: chmod
does not stop root); without the right to mount, those tests are skipped and say so.
A disk turning read-only under the running service cannot be staged here (remounting
read-only is refused while DuckDB holds files open for writing); it takes the same path as
a full disk (service.store.storage recognises "Read-only file system"), and a read-only
disk at start is tested."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from service.app import Ekko
from service.cli.common import EXIT_STORAGE
from service.config import Settings
from tests.client import Client, assert_rejected
from tests.factories import Factory
from tests.natsd import NatsServer
from tests.sync_helpers import eventually, relay_idle

ROOT = Path(__file__).resolve().parents[2]
DISK_SIZE = "24m"


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], check=False, capture_output=True).returncode == 0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE of this test's own."""
    where = tmp_path / "disk"
    where.mkdir()
    if not _mount("-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(where)):
        pytest.skip("needs the right to mount a tmpfs (root) to fill a disk")
    yield where
    _mount("-o", "remount,rw", str(where))
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def db_path(disk: Path) -> Path:
    return disk / "ekko.db"


@contextlib.contextmanager
def full(disk: Path) -> Iterator[None]:
    """The disk filled to the last byte while inside."""
    filler = disk / "filler"
    # Unbuffered: a buffered file keeps the bytes a last, partial write could not place and
    # fails again closing, outside the suppress, whenever free space is no multiple of a chunk.
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
    try:
        yield
    finally:
        filler.unlink()


async def _health(client: Client) -> dict:
    return (await client.request("ekko.health", timeout=10)).body


async def _writes_resume(client: Client, make: Factory) -> None:
    async def created() -> bool:
        return (await client.request("ekko.wallets.create", await make.payload("wallets"), timeout=5)).ok

    await eventually(created, timeout=30, what="writes accepted again")


# serial: the relay's retried write can land in the WAL's slack and clear the degraded
# state before health is asked, a race parallel workers' load made likely
@pytest.mark.serial
async def test_a_full_disk_refuses_writes_with_503_and_they_resume_when_space_returns(
    ekko: Ekko, client: Client, make: Factory, disk: Path
) -> None:
    wallet = await make.create("wallets")
    await make.parent("users")  # the agents' creator, made while the disk has room
    with full(disk):
        # A small write can still fit in the slack of the WAL's last page: write until refused.
        for _ in range(50):
            blob = {"name": "a", "type": "t", "config": {"blob": "x" * 50_000}}
            reply = await client.request("ekko.agents.create", await make.payload("agents", **blob), timeout=5)
            if not reply.ok:
                break
        assert_rejected(reply, 503)
        assert reply.error["code"] == "unavailable"
        assert "No space left on device" in reply.error["message"]
        # Reads go on: from the cache and from DuckDB.
        assert await client.ok("ekko.wallets.get", {"id": wallet["id"]}) == wallet
        assert [w["id"] for w in (await client.ok("ekko.wallets.list", {}))["items"]] == [wallet["id"]]
        again = await client.request("ekko.agents.create", await make.payload("agents", **blob), timeout=5)
        assert_rejected(again, 503)
        health = await _health(client)
        assert health["status"] == "degraded"
        assert "No space left on device" in health["database"]["error"]
    # Space is back: health says so before any write proves it, the relay forgets what it
    # published while its deletes were refused (no new write needed), and writes resume.
    health = await _health(client)
    assert health["database"]["error"] is None
    await relay_idle(ekko, timeout=10)
    await _writes_resume(client, make)


async def test_a_failed_checkpoint_at_shutdown_is_logged_as_a_failure(
    settings: Settings, nats_server: NatsServer, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Ekko(settings, nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url)
    make = Factory(Client(nc))
    for _ in range(50):  # enough in the WAL that the checkpoint must grow the file
        await make.create("agents", config={"blob": "x" * 20_000})
    await nc.close()
    caplog.set_level(logging.INFO)
    with full(disk):
        await app.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("checkpoint FAILED" in m for m in messages), messages
    assert not any("checkpointed and closed" in m for m in messages)


def _ekko_run(db_path: Path, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATS_URL": nats_url, "DUCKDB_PATH": str(db_path), "EKKO_NATS_CONNECT_TIMEOUT": "5"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "run"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_data_directory_that_cannot_be_opened_is_one_line_and_exit_5(tmp_path: Path, nats_server: NatsServer) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    done = _ekko_run(in_the_way / "ekko.db", nats_server.url)
    assert done.returncode == EXIT_STORAGE, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ekko: ")]
    assert len(lines) == 1 and "cannot open the database" in lines[0], done.stderr


def test_a_read_only_data_directory_at_start_is_one_line_and_exit_5(disk: Path, nats_server: NatsServer) -> None:
    assert _mount("-o", "remount,ro", str(disk))
    done = _ekko_run(disk / "ekko.db", nats_server.url)
    assert done.returncode == EXIT_STORAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert "Read-only file system" in done.stderr


@pytest.fixture
def fast_kv_check(settings: Settings) -> Settings:
    return settings.with_(kv_check_interval=1.0)


# serial: it times the refill (under 3 s) and once saw the refilled bucket read empty right
# after while four workers loaded the 2 cores
@pytest.mark.serial
async def test_a_kv_bucket_deleted_at_run_time_shows_in_health_and_is_refilled_without_a_write(
    fast_kv_check: Settings, nats_server: NatsServer
) -> None:
    app = Ekko(fast_kv_check, nats_server.url)
    await app.start()
    nc = await nats.connect(nats_server.url)
    try:
        client = Client(nc)
        wallets = [await Factory(client).create("wallets") for _ in range(3)]
        js = nc.jetstream()
        await eventually(lambda: _keys(js, "wallets", 3), what="wallets in KV")
        await js.delete_key_value("wallets")
        health = await _health(client)
        assert health["status"] == "degraded" and health["jetstream"]["missing_buckets"] == ["wallets"], health
        relay = app.relay
        assert relay is not None

        async def refilled() -> bool:
            return relay.stats.buckets_recreated == 1 and await _keys(js, "wallets", 3)

        took = await eventually(refilled, timeout=10, what="wallets bucket recreated and refilled")
        assert took < 1.0 + 2.0  # the check interval, and the repair itself
        health = await _health(client)
        assert "missing_buckets" not in health["jetstream"]
        # Exactly the three, read again on a miss: once in CI, nats-py's keys() raised NoKeysError
        # here just after a read had found all three, with no write or recreation in between.
        ids = {w["id"] for w in wallets}
        await eventually(lambda: _key_set_is(js, "wallets", ids), timeout=5, what="exactly the three wallet keys")
    finally:
        await nc.close()
        await app.stop()


async def _key_set(js: nats.js.JetStreamContext, bucket: str) -> set[str]:
    """The bucket's keys; none while it is missing or a read finds none."""
    try:
        return set(await (await js.key_value(bucket)).keys())
    except (TimeoutError, nats.js.errors.BucketNotFoundError, nats.js.errors.NoKeysError):
        return set()


async def _key_set_is(js: nats.js.JetStreamContext, bucket: str, keys: set[str]) -> bool:
    return await _key_set(js, bucket) == keys


async def _keys(js: nats.js.JetStreamContext, bucket: str, count: int) -> bool:
    return len(await _key_set(js, bucket)) == count
