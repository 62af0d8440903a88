"""A real nats-server for tests: free port, temp JetStream dir, stop/restart on demand.

It runs with the repository's nats-server.conf (the real users and permissions), fixed
test passwords, and nats-server's default max_payload of 1 MiB unless a test asks for
another (the repository's conf raises it for the bundled server). `url` connects as the
service user `ekko` (JetStream, every subject): test set-up and checks use it; `url_for(user)` connects as anyone else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from service.cli.natsd import binary, conf_path
from service.config import NATS_PASSWORD_VARIABLES

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's own default, what a stock deployment has
PASSWORDS = {user: f"test-{user}-password" for user in NATS_PASSWORD_VARIABLES}
READER_INBOX = "_INBOX_reader"  # the reader may subscribe only to its own inbox prefix
START_ATTEMPTS = 3  # a first start on a port another process took meanwhile tries a new one


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server process. `stop()` and `start()` keep the port and the store.
    `no_auth_user`: who a connection without credentials is ("" refuses such connections)."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        no_auth_user: str = "client",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.no_auth_user = no_auth_user
        self.proc: subprocess.Popen[bytes] | None = None
        self._port_picked_here = port is None
        self._started_once = False
        # A config of its own that includes the repository's (include paths are relative to
        # the including file) and sets max_payload, which `reload` rewrites.
        self.config = store_dir.parent / f"nats-{self.port}.conf"
        self.log = self.config.with_suffix(".log")  # what nats-server says, for a start that fails
        self._write_config(max_payload)

    def _write_config(self, max_payload: int) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        include = os.path.relpath(conf_path(), self.config.parent)
        self.config.write_text(f'include "{include}"\nmax_payload: {max_payload}\n')

    def reload(self, *, max_payload: int) -> None:
        """Change max_payload of the running server (clients keep the value they were told)."""
        assert self.proc is not None
        self._write_config(max_payload)
        self.proc.send_signal(signal.SIGHUP)

    @property
    def url(self) -> str:
        """As the service user `ekko`."""
        return self.url_for("ekko")

    @property
    def anonymous_url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def url_for(self, user: str) -> str:
        return f"nats://{user}:{PASSWORDS[user]}@127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        passwords = {NATS_PASSWORD_VARIABLES[user]: password for user, password in PASSWORDS.items()}
        return {**os.environ, **passwords, "EKKO_NO_AUTH_USER": self.no_auth_user}

    def start(self) -> NatsServer:
        """Start and wait until this process listens. A port picked by free_port() may be taken
        by another process before nats-server binds it (parallel test workers pick ports too):
        then the first start retries on another port; a restart keeps its port and fails."""
        may_move = self._port_picked_here and not self._started_once
        for _ in range(START_ATTEMPTS if may_move else 1):
            if self._spawn():
                self._started_once = True
                return self
            if may_move:
                self.port = free_port()
        raise RuntimeError(f"nats-server did not start on port {self.port}:\n{self._log_tail()}")

    def _spawn(self) -> bool:
        """True once this process listens, False if it exited (e.g. its port was in use).
        Readiness is nats-server's ports file for this pid, not a connection to the port:
        a connection could reach another process that holds the same port."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary(),
                    "-c",
                    str(self.config),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                    "--ports_file_dir",
                    str(self.config.parent),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
        ports_file = self.config.parent / f"{Path(binary()).name}_{self.proc.pid}.ports"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ports_file.exists():
                return True
            if self.proc.poll() is not None:
                self.proc = None
                return False
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not start listening within 10 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
