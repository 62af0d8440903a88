"""The Python and JavaScript examples in docs/subjects.md run as written against a real ekko."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from service.app import Ekko
from tests.natsd import NatsServer
from tests.support import JS_DIR, installed_node

DOC = Path(__file__).resolve().parents[2] / "docs" / "subjects.md"
DOC_URL = "nats://127.0.0.1:4222"


def example(language: str, server: NatsServer, heading: str = "") -> str:
    """The ```language block of the doc (the one under `## Example: <heading>` when given),
    pointed at this test's server."""
    text = DOC.read_text()
    if heading:
        text = text.split(f"## Example: {heading}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    assert DOC_URL in block
    return block.replace(DOC_URL, server.anonymous_url)  # as written: no credentials, so user `client`


async def run(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode()


@pytest.mark.parametrize(
    ("heading", "printed"),
    [
        ("Python (nats-py)", "['0.250000000000000000']"),
        ("Python (ekko_client)", "[Decimal('0.250000000000000000')] 404"),
    ],
)
async def test_the_python_examples_run_and_print_the_balance(
    heading: str, printed: str, ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(example("python", nats_server, heading))
    code, output = await run(sys.executable, str(script), cwd=tmp_path)
    assert code == 0, output
    assert output.strip() == printed


async def test_the_javascript_example_runs_and_disables_the_rule(
    ekko: Ekko, nats_server: NatsServer, tmp_path: Path
) -> None:
    node = installed_node()
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")  # Node resolves `nats` beside the script
    script = tmp_path / "example.mjs"
    script.write_text(example("js", nats_server))
    code, output = await run(node, str(script), cwd=tmp_path)
    assert code == 0, output
    assert "enabled: false" in output and "version: 2" in output
