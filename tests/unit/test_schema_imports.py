"""schema/ is shipped twice: as `schema` in the service and as `ekko_client.schema` in the
client wheel. So inside it every import of its own modules is relative, and nothing but
msgspec and the standard library is imported (import-linter checks the package list; this
checks the spelling, which a renamed copy depends on)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parents[2] / "schema"
ALLOWED = {"msgspec", "__future__"} | set(sys.stdlib_module_names)


def absolute_imports(path: Path) -> list[str]:
    """Top-level names of every absolute import in the module (at any depth)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(SCHEMA.rglob("*.py")), ids=lambda p: p.name)
def test_schema_imports_msgspec_stdlib_and_itself_relatively(path: Path) -> None:
    refused = [name for name in absolute_imports(path) if name.split(".")[0] not in ALLOWED]
    assert not refused, f"{path.name}: import {refused}: use `from .module import X` or msgspec/stdlib only"


def test_the_check_sees_an_absolute_schema_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from schema.common import Record\nimport duckdb\nfrom .common import Id\nimport json\n")
    assert absolute_imports(module) == ["schema.common", "duckdb", "json"]
