"""What every benchmark needs: a nats-server, responders in child processes,
load generators (closed loop, paced open loop), percentiles and a table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tests.natsd import NatsServer

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def nats_server() -> Iterator[tuple[NatsServer, Path]]:
    """A fresh nats-server with JetStream, and a temp dir for everything else of the run."""
    with tempfile.TemporaryDirectory(prefix="ekko-bench-") as tmp:
        server = NatsServer(Path(tmp) / "jetstream").start()
        try:
            yield server, Path(tmp)
        finally:
            server.stop()


@contextlib.contextmanager
def responder(kind: str, nats_url: str, *options: str, ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[str]]:
    """`python -m bench.serve <kind>` in a child process, from READY until SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.serve", kind, "--nats", nats_url, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_ready(proc, kind, ready_timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[str], kind: str, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(deadline - time.monotonic()):
                line = proc.stdout.readline()
                if line.strip() == "READY":
                    return
                if not line:
                    raise RuntimeError(f"responder {kind} exited with {proc.wait()}")
    raise RuntimeError(f"responder {kind} not ready within {timeout}s")


async def connect(url: str) -> NATS:
    return await nats.connect(url, max_reconnect_attempts=0, pending_size=64 * 1024 * 1024)


def is_error(msg: Msg) -> bool:
    return bool(msg.headers and "Nats-Service-Error-Code" in msg.headers)


async def outbox_pending(nc: NATS, prefix: str = "ekko") -> int:
    """Changes committed but not yet acknowledged by JetStream (`<prefix>.database.health`)."""
    reply = await nc.request(f"{prefix}.database.health", b"", timeout=10)
    return int(json.loads(reply.data)["sync"]["pending"])


async def outbox_drained(nc: NATS, prefix: str = "ekko", timeout: float = 60.0) -> float:
    """Wait until the relay has published everything; returns the seconds it took."""
    start = time.perf_counter()
    while await outbox_pending(nc, prefix):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"outbox not drained within {timeout}s")
        await asyncio.sleep(0.02)
    return time.perf_counter() - start


# -- statistics --------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return values[index]


@dataclass(frozen=True)
class Run:
    """One measured run: latencies in seconds, sorted."""

    latencies: list[float]
    elapsed: float
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def median_of(runs: Sequence[Run], metric: Callable[[Run], float]) -> float:
    return statistics.median(metric(r) for r in runs)


# -- load generators ---------------------------------------------------------
async def closed_loop(nc: NATS, subject: str, payloads: Sequence[bytes], inflight: int, timeout: float = 10.0) -> Run:
    """Send every payload as a request, `inflight` outstanding at all times."""
    latencies: list[float] = []
    errors = 0
    items = iter(payloads)

    async def worker() -> None:
        nonlocal errors
        for payload in items:  # the shared iterator hands each payload to one worker
            start = time.perf_counter()
            msg = await nc.request(subject, payload, timeout=timeout)
            latencies.append(time.perf_counter() - start)
            errors += is_error(msg)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - start
    return Run(sorted(latencies), elapsed, errors)


@dataclass(frozen=True)
class Paced:
    sent: int
    elapsed: float  # first send -> last reply
    send_span: float  # first send -> last send: the schedule says total / rate
    max_behind: float  # worst lateness of a send against its schedule

    @property
    def rate(self) -> float:
        return self.sent / self.send_span if self.send_span else float("nan")


async def paced(send: Callable[[int], Awaitable[None]], total: int, rate: float, inflight: int) -> Paced:
    """Open loop: call send(i) at start + i / rate, never more than `inflight` at once.
    When the target is slow the cap holds sends back: `max_behind` and the achieved rate show it."""
    slots = asyncio.Semaphore(inflight)
    tasks: set[asyncio.Task[None]] = set()
    max_behind = 0.0

    async def one(i: int) -> None:
        try:
            await send(i)
        finally:
            slots.release()

    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        max_behind = max(max_behind, time.perf_counter() - due)
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    send_span = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return Paced(total, time.perf_counter() - start, send_span, max_behind)


# -- output ------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
