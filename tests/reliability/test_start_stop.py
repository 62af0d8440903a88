"""Start and stop (issue 9, item 8): `ekko run` facing an unreachable NATS says what it is
waiting for, retries with backoff up to EKKO_NATS_CONNECT_TIMEOUT and honours SIGTERM and
SIGINT meanwhile; SIGTERM to `python3 dev.py run` stops ekko and the bundled nats-server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.cli.common import EXIT_NO_NATS
from tests.natsd import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    return {**env, "DUCKDB_PATH": str(tmp_path / "data" / "ekko.db"), "BCRYPT_ROUNDS": "4", **extra}


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(pattern, log.read_text(errors="replace")):
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in the output within {timeout} s:\n{log.read_text()}")


def _stopped_within(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {timeout} s after the signal") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ekko_run_says_it_waits_for_nats_and_a_signal_stops_it(sig: signal.Signals, tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    log = tmp_path / "ekko.log"
    proc = _run([sys.executable, "-m", "service.cli", "run"], _env(tmp_path, NATS_URL=url), log)
    _wait_for(log, rf"waiting for NATS at {re.escape(url)}", proc)
    _wait_for(log, r"attempt 2 failed", proc)  # it retries
    proc.send_signal(sig)
    assert _stopped_within(proc, 10) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_ekko_run_gives_up_after_the_connect_timeout_with_exit_4(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    log = tmp_path / "ekko.log"
    started = time.monotonic()
    env = _env(tmp_path, NATS_URL=url, EKKO_NATS_CONNECT_TIMEOUT="2")
    proc = _run([sys.executable, "-m", "service.cli", "run"], env, log)
    assert _stopped_within(proc, 30) == EXIT_NO_NATS, log.read_text()
    output = log.read_text()
    assert f"ekko: cannot reach NATS at {url}" in output and "Traceback" not in output
    assert time.monotonic() - started < 20


def test_sigterm_to_dev_py_run_stops_ekko_and_its_bundled_nats_server(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "dev.log"
    proc = _run(["python3", "dev.py", "run"], _env(tmp_path, EKKO_BUNDLED_NATS_PORT=str(port)), log)
    server = int(_wait_for(log, r"started bundled nats-server \(pid (\d+)\)", proc).group(1))
    _wait_for(log, rf"ekko: serving on nats://127.0.0.1:{port}", proc)
    assert _alive(server)
    proc.send_signal(signal.SIGTERM)
    assert _stopped_within(proc, 30) == 0, log.read_text()
    assert _poll(lambda: not _alive(server), 10), "the bundled nats-server outlived ekko"
    assert "checkpointed and closed" in log.read_text()


def _poll(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
