"""Issue 10: backups are pruned to EKKO_BACKUP_KEEP, refused (507) without disk room and
kept owner-only; admin subjects leave one audit line each, with no secret in it."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from collections import namedtuple
from pathlib import Path

import pytest

from service.app import Ekko
from service.config import Settings
from service.migration import backups as backups_module
from tests.client import Client, assert_rejected
from tests.factories import PASSWORD, Factory

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, keeping two backups."""
    return settings.with_(backup_keep=2)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_only_the_newest_backups_are_kept_and_all_are_owner_only(ekko: Ekko, admin: Client) -> None:
    made = [(await admin.ok("ekko.admin.backup"))["path"] for _ in range(3)]
    backups_dir = ekko.settings.data_dir / "backups"
    kept = sorted(str(p) for p in backups_dir.iterdir())
    assert kept == sorted(made[1:])
    assert mode(backups_dir) == 0o700
    assert all(mode(Path(p)) == 0o700 for p in kept)


async def test_a_backup_without_disk_room_is_refused_with_507_and_writes_nothing(
    ekko: Ekko, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Factory(admin).create("wallets")
    monkeypatch.setattr(backups_module.shutil, "disk_usage", lambda _path: Usage(10**9, 10**9, 1024))
    reply = await admin.request("ekko.admin.backup", timeout=30)
    assert_rejected(reply, 507)
    assert reply.error["code"] == "insufficient_storage"
    backups_dir = ekko.settings.data_dir / "backups"
    assert not backups_dir.exists() or not any(backups_dir.iterdir())


def test_the_estimate_counts_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "ekko.db"
    db.write_bytes(b"x" * 5000)
    assert backups_module.estimated_size(db, None) == 5000
    free = shutil.disk_usage(tmp_path).free
    backups_module.ensure_free_space(tmp_path / "backups", 1)  # the real disk has 64 MiB free
    with pytest.raises(backups_module.InsufficientStorage):
        backups_module.ensure_free_space(tmp_path / "backups", free)


async def test_each_admin_subject_is_audited_once_without_secrets(
    ekko: Ekko, admin: Client, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ekko.audit")
    await admin.ok("ekko.admin.sync.verify")
    await admin.ok("ekko.admin.sync.repair")
    backup = await admin.ok("ekko.admin.backup")
    refused = await admin.request("ekko.admin.migration.migrate", {"force": True})
    assert refused.status == 409
    user = await admin.ok(
        "ekko.admin.users.create", {"email": "root@example.com", "password": PASSWORD, "role": "admin"}
    )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ekko.audit"]
    assert [(line["event"], line["outcome"]) for line in lines] == [
        ("ekko.admin.sync.verify", "ok"),
        ("ekko.admin.sync.repair", "ok"),
        ("ekko.admin.backup", "ok"),
        ("ekko.admin.migration.migrate", "conflict"),
        ("ekko.admin.users.create", "ok"),
    ]
    assert lines[2]["path"] == backup["path"]
    assert lines[4]["id"] == user["id"] and lines[4]["role"] == "admin"
    assert all(line["who"] == "unknown" for line in lines)
    row = await ekko.db.read(
        lambda cur: cur.execute("SELECT password_hash FROM users WHERE id = ?", [user["id"]]).fetchone()
    )
    assert row is not None
    hashed = row[0]
    assert PASSWORD not in caplog.text and hashed not in caplog.text
