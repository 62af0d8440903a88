"""A real nats-server for tests: free port, temp JetStream dir, stopped and started again on demand."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from service.cli.natsd import binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One nats-server process. `stop()` and `start()` keep the port and the store."""

    def __init__(self, store_dir: Path, port: int | None = None, *, max_payload: int | None = None) -> None:
        """max_payload: None keeps nats-server's default (1 MiB); else it runs with a config
        file, which `reload(max_payload=...)` rewrites and makes the server re-read."""
        self.store_dir = store_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.config: Path | None = None
        if max_payload is not None:
            self.config = store_dir.parent / f"nats-{self.port}.conf"
            self._write_config(max_payload)

    def _write_config(self, max_payload: int) -> None:
        assert self.config is not None
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"max_payload: {max_payload}\n")

    def reload(self, *, max_payload: int) -> None:
        """Change max_payload of the running server (clients keep the value they were told)."""
        assert self.proc is not None and self.config is not None
        self._write_config(max_payload)
        self.proc.send_signal(signal.SIGHUP)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        config = ["-c", str(self.config)] if self.config is not None else []
        self.proc = subprocess.Popen(
            [binary(), *config, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nats-server exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start listening within 10 s")

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
