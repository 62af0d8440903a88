"""Helpers more than one test module uses (test modules import from tests/ support
modules only, never from each other): the docs/schemas.json generator and validation
against the schemas it publishes, and Node.js with the JavaScript client's packages installed."""

from __future__ import annotations

import fcntl
import functools
import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scripts import gen_schemas

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "tests" / "e2e" / "js"
NODE_MISSING = "node and npm (Node.js 20+) are needed for the JavaScript client test"


def load_generator() -> Any:
    """scripts/gen_schemas.py, the docs/schemas.json generator."""
    return gen_schemas


SCHEMAS_JSON = ROOT / "docs" / "schemas.json"
# Formats asserted, as the JSON Schema spec allows: `date-time` must be a real date and time
# (the pattern of the published schema cannot rule out February 30).
FORMATS = jsonschema.FormatChecker(())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return True


@functools.cache
def published() -> dict[str, Any]:
    """docs/schemas.json as committed (what other teams read)."""
    return dict(json.loads(SCHEMAS_JSON.read_bytes()))


def schema_errors(schema: dict[str, Any] | None, instance: Any) -> list[str]:
    """What is wrong with `instance` by a schema of docs/schemas.json (its `$defs` resolve);
    a None schema (a subject that takes no body) allows nothing, {} or null."""
    if schema is None:
        return [] if instance in (None, {}) else [f"{instance!r}: this subject takes no body"]
    validator = jsonschema.Draft202012Validator({**schema, "$defs": published()["$defs"]}, format_checker=FORMATS)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}" for e in validator.iter_errors(instance)
    ]


def assert_valid(schema: dict[str, Any] | None, instance: Any, what: str) -> None:
    errors = schema_errors(schema, instance)
    assert not errors, f"{what} does not match docs/schemas.json:\n" + "\n".join(errors)


def tool(name: str) -> str:
    """The path of node or npm; the test is skipped (with the reason) when either is missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(NODE_MISSING)
    path = shutil.which(name)
    assert path is not None
    return path


JS_PACKAGES = ("nats", "@nats-io/services", "@nats-io/transport-node")  # tests/e2e/js/package.json's


@functools.cache
def installed_node() -> str:
    """node, with tests/e2e/js's packages installed (once; package-lock.json pins them).
    Skips the calling test when node or npm is not on PATH."""
    node = tool("node")
    # Parallel test workers (pytest-xdist) are separate processes: one installs, the others wait
    # for it on the lock and then find the packages there.
    with (JS_DIR / "package.json").open("rb") as locked:
        fcntl.flock(locked, fcntl.LOCK_EX)
        if not all((JS_DIR / "node_modules" / package).is_dir() for package in JS_PACKAGES):
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


# -- plain-Python references for list requests ---------------------------------------


def python_sorted(items: list[Any], keys: list[tuple[str, bool]], value: Any = getattr) -> list[Any]:
    """items in the order a list's sort gives: `keys` are (field, descending), NULL above every
    value (last ascending, first descending); value(item, field) reads a field."""
    ordered = list(items)
    for field, descending in reversed(keys):  # stable sorts, least significant key first
        present = [i for i in ordered if value(i, field) is not None]
        absent = [i for i in ordered if value(i, field) is None]
        present.sort(key=lambda i: value(i, field), reverse=descending)
        ordered = absent + present if descending else present + absent
    return ordered


def like_matches(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """SQL LIKE as the list docs define it: % any run, _ one character, \\ escapes the next one."""
    if ignore_case:
        pattern, text = pattern.lower(), text.lower()
    regex, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\":
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append({"%": ".*", "_": "."}.get(pattern[i], re.escape(pattern[i])))
        i += 1
    return re.fullmatch("".join(regex), text, re.S) is not None


# What `ekko.search` matches, per type: (matched fields, title fields), as docs/subjects.md
# promises them, written out again rather than read from service.model.search.
SEARCH_PROMISED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "wallets": (("name", "address"), ("name", "address")),
    "alerts": (("message", "type"), ("message",)),
    "users": (("email", "full_name"), ("full_name", "email")),
    "alert_rules": (("name", "description"), ("name",)),
    "workflows": (("name", "description"), ("name",)),
    "agents": (("name", "type"), ("name",)),
}
