"""Files a test session makes once and its parallel workers share."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A file `build(path)` makes, made once per test session and shared by its parallel
    workers (pytest-xdist: the first one builds under a lock, the others wait and reuse it)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's directory, above each worker's own
    path = base / name
    with (base / f"{name}.lock").open("wb") as locked:
        fcntl.flock(locked, fcntl.LOCK_EX)
        if not path.exists():
            partial = base / f"{name}.partial"
            partial.unlink(missing_ok=True)
            build(partial)
            partial.rename(path)
    return path
