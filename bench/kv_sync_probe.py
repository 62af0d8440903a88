"""KV puts/s with JetStream's default fsync policy against `sync_interval: always`.

Decision 8 keeps the default (acknowledge before fsync, fsync every 2 min): DuckDB
is the source of truth and `ekko sync repair` rebuilds KV. This probe shows what
that buys: puts one at a time (a caller waiting for each ack) and with 1,000 in
flight (the relay and the legacy seeding), each policy twice, on a fresh server.
A probe, not a benchmark with a goal: it is not in `python -m bench`.

    python -m bench.kv_sync_probe [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
from nats.js.api import KeyValueConfig

from bench.harness import table
from service.cli.natsd import binary
from tests.natsd import free_port

VALUE = b'{"id":"x","blockchain_symbol":"ETH","address":"0x' + b"ab" * 20 + b'","balance":1.5}'
INFLIGHT = 1000


@contextmanager
def server(sync_always: bool) -> Iterator[str]:
    """A nats-server with its own store; `sync_always` fsyncs before every ack."""
    with tempfile.TemporaryDirectory(prefix="ekko-kv-sync-") as tmp:
        policy = "sync_interval: always" if sync_always else ""
        conf = Path(tmp) / "nats.conf"
        conf.write_text(f'jetstream {{\n  store_dir: "{tmp}/js"\n  {policy}\n}}\n')
        port = free_port()
        proc = subprocess.Popen(
            [binary(), "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("nats-server did not start") from None
                    time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


async def puts_per_second(url: str, one_at_a_time: int, in_flight: int) -> tuple[float, float]:
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket="probe", history=10))
        start = time.perf_counter()
        for i in range(one_at_a_time):
            await kv.put(f"s{i}", VALUE)
        sequential = one_at_a_time / (time.perf_counter() - start)
        start = time.perf_counter()
        for first in range(0, in_flight, INFLIGHT):
            keys = range(first, min(first + INFLIGHT, in_flight))
            await asyncio.gather(*(kv.put(f"p{i}", VALUE) for i in keys))
        pipelined = in_flight / (time.perf_counter() - start)
    finally:
        await nc.drain()
    return sequential, pipelined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer puts")
    args = parser.parse_args()
    sequential, pipelined = (300, 2000) if args.quick else (3000, 20000)
    rows = []
    for sync_always in (False, True, False, True):
        with server(sync_always) as url:
            one, many = asyncio.run(puts_per_second(url, sequential, pipelined))
        rows.append(("always" if sync_always else "default (2 min)", f"{one:,.0f}", f"{many:,.0f}"))
    print(table(("sync_interval", "puts/s one at a time", f"puts/s {INFLIGHT:,} in flight"), rows))


if __name__ == "__main__":
    main()
