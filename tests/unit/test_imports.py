"""The import graph of schema/, service/ and handlers/ has no cycle, and nothing hides one:
no import inside a function, no `suppress(ImportError)`. The layer direction itself is the
import-linter contract in pyproject.toml, run by `python3 dev.py check`."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schema", "service", "handlers")


def module_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def import_graph() -> dict[str, set[str]]:
    """module -> modules it imports (every import statement, at any depth, TYPE_CHECKING too).
    A package's __init__ is left out as an importer: importing `a.b` runs `a/__init__`, which
    re-exports from its own submodules by design."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def test_strongly_connected_finds_a_cycle_it_is_shown() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_any_two_modules() -> None:
    graph = import_graph()
    assert len(graph) > 40, sorted(graph)
    packages = {m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").exists()}
    # A package importing its own submodules (re-exports) is not a cycle through that package.
    edges = {m: {n for n in deps if not (m in packages and n.startswith(m + "."))} for m, deps in graph.items()}
    assert strongly_connected(edges) == []


def test_no_import_hides_inside_a_function_or_behind_suppress_import_error() -> None:
    hidden = []
    for path in module_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno} import inside {node.name}()")
            if (
                isinstance(node, ast.Call)
                and "suppress" in ast.unparse(node.func)
                and "ImportError" in ast.unparse(node)
            ):
                hidden.append(f"{path.relative_to(ROOT)}:{node.lineno} suppress(ImportError)")
    assert hidden == []


def test_every_module_imports_on_its_own() -> None:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        found = pkgutil.walk_packages(module.__path__, package + ".")
        names += [package, *(m.name for m in found if not m.name.endswith(".__main__"))]  # __main__ runs
    for name in names:
        importlib.import_module(name)
    assert len(names) > 40


def test_test_modules_import_helpers_from_tests_support_modules_not_from_each_other() -> None:
    """Shared helpers live in tests/*.py (support modules); importing one test module from
    another runs its tests' collection twice and hides where a helper belongs."""
    tests_dir = ROOT / "tests"
    support = {f"tests.{p.stem}" for p in tests_dir.glob("*.py")}
    crossing = []
    for path in sorted(tests_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("tests.") and name not in support:
                    crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert crossing == []
