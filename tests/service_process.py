"""`ekko run` as a separate process, as operators and the crash tests need it: only
another process makes DuckDB's one-process-per-file lock (and SIGKILL) real."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import nats

from tests.client import Client
from tests.sync_helpers import eventually

ROOT = Path(__file__).resolve().parents[1]


LEASE_TTL = 6  # seconds: a restart after SIGKILL waits at most this long for the dead one's lease


def start_service(
    nats_url: str, db_path: Path, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DUCKDB_PATH": str(db_path),
        "BCRYPT_ROUNDS": "4",
        "EKKO_WORKERS_PER_SUBJECT": "4",
        "EKKO_WRITE_WORKERS_PER_SUBJECT": "8",
        "EKKO_LEASE_TTL": str(LEASE_TTL),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run"], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def wait_ready(client: Client) -> None:
    async def ready() -> bool:
        try:
            return (await client.request("ekko.health", timeout=0.5)).ok
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            return False

    await eventually(ready, timeout=30, what="service ready")


async def ekko_command(*args: str, nats_url: str, db_path: Path, **env: str) -> tuple[int, str, str]:
    """One `ekko <args>` command as an operator runs it, in its own process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "NATS_URL": nats_url, "DUCKDB_PATH": str(db_path), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
