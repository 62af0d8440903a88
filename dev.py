#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine that has only Python.

    python3 dev.py run     # make .venv if needed, then `ekko run`
    python3 dev.py test    # make .venv if needed, then every check and the whole test suite
                           # (on parallel workers; tests marked `serial` after, alone)
    python3 dev.py check   # only the checks: ruff lint + format, import contracts, mypy,
                           # docs/schemas.json and docs/asyncapi.json current
    python3 dev.py bench   # the benchmarks under bench/
    python3 dev.py ekko …  # any `ekko` subcommand inside the venv
    python3 dev.py lock    # regenerate requirements.lock from pyproject.toml
                           # (extra arguments go to pip-compile, e.g. --upgrade)

Installs come from requirements.lock only (exact versions and sha256 hashes,
no resolution at install time); .venv is rebuilt when pyproject.toml or
requirements.lock changes.

Standard library only: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".ekko-installed"
LOCK = ROOT / "requirements.lock"
# The typed client (package ekko_client, its own pyproject.toml): installed editable beside ekko so
# the tests and checks import it as its users do.
CLIENT = ROOT / "client"
# The image's runtime packages only, pinned to the same versions as LOCK (the Dockerfile installs it).
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
# `lock` runs pip-compile from its own venv, so the tool never mixes with the project's packages.
TOOLS = ROOT / ".venv-tools"
TOOLS_BIN = TOOLS / ("Scripts" if os.name == "nt" else "bin")
PIP_TOOLS = "pip-tools==7.6.2"  # pinned: another version may write the lock differently
LOCK_PYTHON = (3, 11)  # the lock is resolved for this Python (the one CI and the Dockerfile use)
PIP_COMPILE_ARGS = [
    "--quiet",  # the lock is written to its file, not echoed
    "--generate-hashes",  # every file of each pinned version, so any platform's wheel verifies
    "--extra=test",
    "--extra=dev",
    "--strip-extras",
    "--allow-unsafe",  # setuptools is pinned too ...
    "--build-deps-for=editable",  # ... as the build backend of `pip install -e .`
    "--no-emit-index-url",  # a machine's mirror settings stay out of the lock
    "--no-emit-find-links",
    "--output-file=requirements.lock",
    "pyproject.toml",
]


def _requirements_digest() -> str:
    """Changes whenever the declared dependencies or the lock change."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CLIENT / "pyproject.toml", LOCK):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_venv() -> None:
    """(Re)build .venv from requirements.lock when pyproject.toml or the lock changed.

    The venv is made afresh so packages dropped from the lock do not linger. Every
    package comes from the lock with --require-hashes --no-deps; ekko itself is then
    installed editable (and the client in client/) with --no-deps --no-build-isolation, built by the locked
    setuptools, so that step can neither fetch nor upgrade anything."""
    digest = _requirements_digest()
    if (BIN / "python").exists() and STAMP.exists() and STAMP.read_text() == digest:
        return
    print("dev.py: creating .venv and installing requirements.lock into it", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--require-hashes", "--no-deps", "-r", str(LOCK)], check=True)
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(CLIENT)], check=True)
    # --no-deps trusts the lock to be complete; a dependency missing from it fails here, not later.
    subprocess.run([*pip, "check"], check=True, stdout=subprocess.DEVNULL)
    STAMP.write_text(digest)


def lock(extra_args: list[str]) -> int:
    """Regenerate requirements.lock with pip-compile (pip-tools in .venv-tools).

    Existing pins are kept where pyproject.toml still allows them; pass --upgrade
    (or --upgrade-package NAME) to move them."""
    if sys.version_info[:2] != LOCK_PYTHON:
        wanted = ".".join(map(str, LOCK_PYTHON))
        print(f"dev.py lock: run it with Python {wanted} (the lock is resolved for it)", file=sys.stderr)
        return 2
    marker = TOOLS / ".pip-tools-installed"
    if not (marker.exists() and marker.read_text() == PIP_TOOLS):
        print(f"dev.py: installing {PIP_TOOLS} into {TOOLS.name}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        pip = [str(TOOLS_BIN / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
        subprocess.run([*pip, PIP_TOOLS], check=True)
        marker.write_text(PIP_TOOLS)
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "python3 dev.py lock"}
    compile_ = [str(TOOLS_BIN / "pip-compile")]
    code = subprocess.call([*compile_, *PIP_COMPILE_ARGS, *extra_args], cwd=ROOT, env=env)
    if code != 0:
        return code
    # The runtime lock is resolved under the full lock's pins, so both name the same versions.
    pins = TOOLS / "pins.txt"
    pins.write_text("".join(f"{line}\n" for line in _pins(LOCK)))
    runtime_args = [a for a in PIP_COMPILE_ARGS if not a.startswith(("--extra", "--build-deps", "--output-file"))]
    return subprocess.call(
        [*compile_, *runtime_args, f"--constraint={pins.relative_to(ROOT)}", f"--output-file={RUNTIME_LOCK.name}"],
        cwd=ROOT,
        env=env,
    )


def _pins(lock_file: Path) -> list[str]:
    """`name==version` of every package a pip-compile lock file pins."""
    return [line.split(" ")[0] for line in lock_file.read_text().splitlines() if "==" in line and line[0].isalnum()]


# The whole suite (`test` with no arguments) on parallel pytest-xdist workers: most tests wait on
# a nats-server, a DuckDB fsync or a subprocess, so 4 workers overlap those waits on 2 cores.
# worksteal: an idle worker takes queued tests from a busy one, so one slow module does not
# leave the others idle at the end. Tests marked `serial` (latency bounds, races with the
# machine's load) run afterwards in one process, alone, as the whole suite did before.
TEST_WORKERS = "4"
PARALLEL_RUN = ["-n", TEST_WORKERS, "--dist", "worksteal", "-m", "not serial"]
SERIAL_RUN = ["-p", "no:xdist", "-m", "serial"]
NO_TESTS_COLLECTED = 5  # pytest's exit status when -m selects nothing

CHECKS = (
    ("ruff lint", ["ruff", "check", "."]),
    ("ruff format", ["ruff", "format", "--check", "."]),
    ("import contracts", ["lint-imports"]),
    ("mypy", ["mypy"]),
    # The published contract is regenerated from the code and must equal the committed files.
    ("docs/schemas.json current", ["python", "-m", "scripts.gen_schemas", "--check"]),
    ("docs/asyncapi.json current", ["python", "-m", "scripts.gen_asyncapi", "--check"]),
)


def check(env: dict[str, str]) -> int:
    """Lint, format, import direction and types (configured in pyproject.toml); stops at the first failure."""
    for name, command in CHECKS:
        print(f"dev.py check: {name}: {' '.join(command)}", flush=True)
        code = subprocess.call([str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env)
        if code != 0:
            print(f"dev.py check: {name} failed (exit {code})", file=sys.stderr, flush=True)
            return code
    return 0


def whole_suite(env: dict[str, str]) -> int:
    """Every test: the parallel part, then the `serial` part (even after a failure, so one run
    reports every failing test); the worse exit status of the two."""
    pytest = [str(BIN / "python"), "-m", "pytest"]
    print(f"dev.py test: parallel tests: pytest {' '.join(PARALLEL_RUN)}", flush=True)
    parallel = subprocess.call([*pytest, *PARALLEL_RUN], cwd=ROOT, env=env)
    print(f"dev.py test: serial tests: pytest {' '.join(SERIAL_RUN)}", flush=True)
    serial = subprocess.call([*pytest, *SERIAL_RUN], cwd=ROOT, env=env)
    if serial == NO_TESTS_COLLECTED:
        serial = 0  # no test is marked serial: nothing to run alone
    return parallel or serial


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "check", "bench", "ekko", "lock"}:
        print(__doc__)
        return 2
    if argv[0] == "lock":
        return lock(argv[1:])
    ensure_venv()
    command, rest = argv[0], argv[1:]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.chdir(ROOT)
    if command == "check":
        return check(env)
    if command == "test" and not rest:
        return check(env) or whole_suite(env)  # everything CI runs: the checks, then every test
    args = {
        "run": [str(BIN / "ekko"), "run", *rest],
        "ekko": [str(BIN / "ekko"), *rest],
        "test": [str(BIN / "python"), "-m", "pytest", *rest],
        "bench": [str(BIN / "python"), "-m", "bench", *rest],
    }[command]
    # Replace this process: SIGTERM and SIGINT then reach ekko (and pytest) directly, so stopping
    # `dev.py run` stops ekko and the nats-server it started, as stopping `ekko run` does.
    os.execve(args[0], args, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
