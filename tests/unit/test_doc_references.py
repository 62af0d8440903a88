"""The docs describe the legacy KV format the code migrates, and nothing in the repository
cites files that live outside it (they would be dead links for everyone else)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from service.model.registry import ENTITIES, ENTITY_ORDER
from service.sync.buckets import EXTRA_BUCKETS

ROOT = Path(__file__).resolve().parents[2]
LEGACY_FORMAT = ROOT / "docs" / "legacy-format.md"
# Notes that lived beside the repository once; spelled in pieces so this file does not match.
OUTSIDE = ("FACTS" + ".md", "legacy-kv" + "-format", "../" + "shared")


def test_legacy_format_names_every_bucket_and_every_renamed_field() -> None:
    text = LEGACY_FORMAT.read_text()
    for bucket in (*ENTITY_ORDER, *EXTRA_BUCKETS):
        assert f"`{bucket}`" in text, bucket
    for spec in ENTITIES.values():
        for old, new in spec.legacy_names.items():
            assert f"`{old}`" in text and f"`{new}`" in text, (spec.name, old)


def test_the_migration_guide_and_the_readme_link_the_legacy_format() -> None:
    assert "(legacy-format.md)" in (ROOT / "docs" / "migration.md").read_text()
    assert "(docs/legacy-format.md)" in (ROOT / "README.md").read_text()


def test_no_tracked_file_cites_a_file_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in tracked.splitlines():
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".conf", ".yml", ".yaml", ".json", ".txt"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {word}" for word in OUTSIDE if word in text]
    assert offenders == []
