"""Every module imports on its own, first: an import cycle shows up only in the order that
closes it (e.g. `import service.sync_check` before `service.migration`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORT_EACH_FIRST = """
import importlib, pkgutil, sys
names = []
for package in ("schema", "service", "handlers"):
    names.append(package)
    module = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("schema", "service", "handlers")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
print("\\n".join(failed))
"""


def test_every_module_imports_first_without_a_cycle() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH_FIRST], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    count, *failures = result.stdout.strip().splitlines()
    assert int(count) > 30
    assert failures == [], failures
