"""Ingest in this process, no NATS and no relay: what one request of 5,000 balance rows costs
the service itself (decoding, checking, the writer's transaction), in wall time and in CPU
time of the whole process (CPU time moves less than wall time on a shared machine).

Same rows as bench.ingest_bench, one request at a time; baseline in the same run: the plain
bulk INSERT of bench.ingest_bench.

    python -m bench.ingest_probe [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import msgspec

from bench.harness import table
from bench.ingest_bench import ITEMS, WALLETS, baseline, batch
from schema.balances import IngestRequest
from schema.common import encode
from service.model.limits import PayloadLimit
from service.store.database import Database
from service.usecases.balances import BalanceService
from service.usecases.cache import RecordCache


async def probe(tmp: Path, requests: int) -> tuple[float, float, float]:
    """(rows/s, process CPU ms per request, decode ms per request)."""
    db = Database(tmp / "ekko.db").open()
    try:
        db.connection.execute(
            "INSERT INTO wallets SELECT uuid()::VARCHAR, now(), now(), 1, 'ETH', a, NULL, 0, 'active', '3:eth' || a"
            " FROM (SELECT '0x' || lpad(i::VARCHAR, 40, '0') AS a FROM range(?) t(i))",
            [WALLETS],
        )
        wallets = [r[0] for r in db.connection.execute("SELECT id FROM wallets ORDER BY address").fetchall()]
        service = BalanceService(db, RecordCache(10_000), after_commit=lambda changes: None, limit=PayloadLimit())
        bodies = [json.dumps({"items": batch(wallets, n)}, separators=(",", ":")).encode() for n in range(requests)]
        decoder = msgspec.json.Decoder(IngestRequest)
        decoding = 0.0
        start, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            t0 = time.perf_counter()
            request = decoder.decode(body)
            decoding += time.perf_counter() - t0
            encode(await service.ingest(request))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return requests * ITEMS / elapsed, cpu / requests * 1000, decoding / requests * 1000
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rate, cpu, decoding = asyncio.run(probe(tmp, args.requests))
        wallets = [f"w{n}" for n in range(WALLETS)]
        base = baseline(tmp / "baseline.db", [batch(wallets, n) for n in range(args.requests)])
    print(
        table(
            ["what", "rows/s", "process CPU ms / 5,000 rows", "vs bulk INSERT"],
            [
                [
                    f"ingest in-process (decode {decoding:.1f} ms/request)",
                    f"{rate:,.0f}",
                    f"{cpu:.1f}",
                    f"{rate / base:.2f}x",
                ],
                ["plain bulk INSERT ... SELECT unnest(?) (baseline)", f"{base:,.0f}", "", "1.00x"],
            ],
        )
    )


if __name__ == "__main__":
    main()
