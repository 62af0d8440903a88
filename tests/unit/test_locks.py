"""Installs come from lock files: a new release of a dependency cannot change what a fresh
clone, CI or the image installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    return {package.lower(): version for package, version in PIN.findall((ROOT / name).read_text())}


def declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_declared_dependency_is_pinned_with_hashes() -> None:
    locked = pins("requirements.lock")
    assert declared("test", "dev") <= set(locked)
    for name in ("requirements.lock", "requirements-runtime.lock"):
        entries = PIN.split((ROOT / name).read_text())[1:]  # name, version, its lines, name, ...
        unhashed = [entries[i] for i in range(0, len(entries), 3) if "--hash=sha256:" not in entries[i + 2]]
        assert unhashed == [], f"{name}: pinned without a hash"


def test_the_runtime_lock_pins_the_same_versions_as_the_full_lock() -> None:
    runtime, full = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert declared() <= set(runtime)
    assert {name: full.get(name) for name in runtime} == runtime
    assert not declared("test", "dev") - declared() & set(runtime), "test tools stay out of the image"


def test_dev_py_and_the_image_install_only_from_the_locks() -> None:
    dev = (ROOT / "dev.py").read_text()
    assert '"--require-hashes", "--no-deps", "-r", str(LOCK)' in dev
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements-runtime.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
