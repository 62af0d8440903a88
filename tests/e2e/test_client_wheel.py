"""The client wheel works on its own: built from client/, installed in a fresh venv that has
nothing but it, nats-py and msgspec (the versions and hashes of requirements.lock), and used
there against the live service (tests/e2e/client_wheel_script.py)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from service.app import Ekko
from tests.natsd import NatsServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "client_wheel_script.py"
CLIENT_DEPENDENCIES = ("nats-py", "msgspec")

pytestmark = pytest.mark.slow


async def run(*args: str | Path, timeout: float = 120) -> str:
    """A command's output; fails the test with it on a non-zero exit. Asynchronous, so the
    service (on this event loop) keeps answering meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    text = out.decode()
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{text}"
    return text


def locked(lock: Path, names: tuple[str, ...]) -> str:
    """The requirement blocks (`name==version \\` plus its `--hash` lines) of `names` in a
    pip-compile lock file, as a requirements file of their own."""
    blocks: list[str] = []
    keep = False
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace():
            keep = line.split("==")[0] in names
        if keep and not line.lstrip().startswith("#"):
            blocks.append(line)
    found = {line.split("==")[0] for line in blocks if "==" in line}
    assert found == set(names), f"{lock.name} pins {found}, expected {names}"
    return "\n".join(blocks) + "\n"


async def build_wheel(work: Path) -> Path:
    """Build from a copy of client/ and schema/ laid out as in the repository, so the link
    client/ekko_client/schema -> ../../schema is followed as a checkout's would be."""
    src = work / "src"
    shutil.copytree(
        ROOT / "client", src / "client", symlinks=True, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    shutil.copytree(ROOT / "schema", src / "schema", ignore=shutil.ignore_patterns("__pycache__"))
    dist = work / "dist"
    await run(
        sys.executable, "-m", "pip", "wheel", src / "client", "--no-deps", "--no-build-isolation", "-q", "-w", dist
    )
    (wheel,) = dist.glob("ekko_client-*.whl")
    return wheel


async def test_the_wheel_works_in_a_fresh_venv(tmp_path: Path, ekko: Ekko, nats_server: NatsServer) -> None:
    wheel = await build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"ekko_client"}, packages  # no top-level schema, service or handlers
    assert "ekko_client/schema/wallets.py" in names

    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    requirements = tmp_path / "client-requirements.txt"
    requirements.write_text(locked(ROOT / "requirements.lock", CLIENT_DEPENDENCIES))
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    await run(*pip, "install", "-q", "--no-deps", "--require-hashes", "-r", requirements)
    await run(*pip, "install", "-q", "--no-deps", "--no-index", wheel)
    await run(*pip, "check")  # the wheel's declared dependencies are all there, and nothing else is needed
    installed = await run(*pip, "list", "--format=freeze")
    assert {line.split("==")[0].lower() for line in installed.split()} == {"ekko-client", *CLIENT_DEPENDENCIES}

    out = await run(python, "-I", SCRIPT, nats_server.url_for("client"), nats_server.url_for("reader"), timeout=60)
    assert out.strip() == "ok 11 checks", out
