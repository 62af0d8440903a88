"""Balance ingest: rows/s committed through `ekko.wallet_balances.ingest`, and how fast the
relay then brings KV and events up to date.

The service runs in its own process (bench.serve ekko). 1,000 wallets are created, then
requests of 5,000 rows each (all that fit in the default 1 MiB max_payload; 18-decimal
amounts, 5 rows per wallet per request, times
spread over a day) are sent two in flight. A reply means committed, with every row's
outbox entry and the derived state (roll-ups, latest row, wallets.balance) written in
the same transaction. Relay catch-up: changes published per second (counted in
EKKO_EVENTS: the rows, and the wallets whose balance moved), from the first ingest until
`database.health` reports nothing pending. The relay holds back while ingests follow each
other, until the oldest waiting change has waited 5 s: a run shorter than that is
published after the last reply, a longer one partly beside it.
Baseline in the same run: the same rows as a plain bulk `INSERT ... SELECT unnest(?)`
into a bare wallet_balances table in a DuckDB file of this process (no rules, no
outbox, no derived state, no NATS).
Goal: at least 50,000 rows/s committed, sustained: counted from the first reply to the last,
once the pipeline is full (the first request waits alone for its decoding, staging and
transaction, with nothing to overlap). The whole run's rate, that wait included, is printed
beside it.

    python -m bench.ingest_bench [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.harness import connect, is_error, nats_server, outbox_drained, outbox_pending, responder, table, verdict

GOAL = 50_000
# 10,000 items of ~175 bytes are ~1.7 MB: more than the default max_payload (1 MiB) the
# bench's nats-server has. 5,000 fit.
ITEMS = 5_000
WALLETS = 1_000
INFLIGHT = 2
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(wallets: list[str], number: int) -> list[dict[str, str]]:
    """ITEMS rows: five per wallet, later batches later in time."""
    rows = []
    for i in range(ITEMS):
        at = T0 + timedelta(seconds=number * 86_400 + i * 8)
        rows.append(
            {
                "wallet_id": wallets[i % len(wallets)],
                "timestamp": at.isoformat(),
                "balance": f"{i}.123456789012345678",
                "token_price": "2000.5",
                "fiat_value": f"{i * 2}.12345678",
            }
        )
    return rows


async def event_count(nc: object) -> int:
    """The last sequence of EKKO_EVENTS: one per change the relay published (a count of
    messages would shrink once the stream's limits discard old ones)."""
    info = await nc.jetstream().stream_info("EKKO_EVENTS")  # type: ignore[attr-defined]
    return int(info.state.last_seq)


async def create_wallets(nc: object, count: int) -> list[str]:
    ids = []
    for n in range(count):
        body = {"blockchain_symbol": "ETH", "address": f"0x{n:040x}"}
        reply = await nc.request("ekko.wallets.create", json.dumps(body).encode(), timeout=30)  # type: ignore[attr-defined]
        ids.append(json.loads(reply.data)["id"])
    return ids


@dataclass(frozen=True)
class Ingested:
    seconds: float  # from the first request sent to the last reply
    committed: int  # rows
    replies: list[tuple[float, int]]  # (seconds since the first request, rows), in reply order

    @property
    def rate(self) -> float:
        """Rows/s over the whole run, the first reply's wait included."""
        return self.committed / self.seconds

    @property
    def sustained(self) -> float:
        """Rows/s from the first reply to the last: the pipeline is full (the first request
        waits alone for its decoding, staging and transaction, with nothing to overlap)."""
        if len(self.replies) < 2:  # one request: nothing overlapped it
            return self.rate
        (first, _), (last, _) = self.replies[0], self.replies[-1]
        return sum(rows for _, rows in self.replies[1:]) / (last - first)


async def ingest(url: str, batches: list[bytes]) -> Ingested:
    nc = await connect(url)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in batches:
        queue.put_nowait(body)
    replies: list[tuple[float, int]] = []

    async def worker() -> None:
        while not queue.empty():
            reply = await nc.request("ekko.wallet_balances.ingest", queue.get_nowait(), timeout=300)
            if is_error(reply):
                raise RuntimeError(f"ingest failed: {reply.headers} {reply.data[:300]!r}")
            replies.append((time.perf_counter() - start, json.loads(reply.data)["count"]))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(INFLIGHT)))
    elapsed = time.perf_counter() - start
    await nc.close()
    return Ingested(elapsed, sum(rows for _, rows in replies), replies)


def baseline(path: Path, batches: list[list[dict[str, str]]]) -> float:
    """Rows/s of a plain bulk INSERT of the same rows, one transaction per batch."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE wallet_balances (id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL,"
        " updated_at TIMESTAMP NOT NULL, version BIGINT NOT NULL, wallet_id VARCHAR NOT NULL,"
        ' "timestamp" TIMESTAMP NOT NULL, balance DECIMAL(38,18) NOT NULL, token_price DECIMAL(38,18),'
        " fiat_value DECIMAL(38,8))"
    )
    con.execute('CREATE INDEX wallet_balances_wallet_time ON wallet_balances (wallet_id, "timestamp")')
    start = time.perf_counter()
    for rows in batches:
        now = datetime.now(UTC).replace(tzinfo=None)
        columns = [
            [str(uuid.uuid4()) for _ in rows],
            [r["wallet_id"] for r in rows],
            [datetime.fromisoformat(r["timestamp"]).replace(tzinfo=None) for r in rows],
            [r["balance"] for r in rows],
            [r["token_price"] for r in rows],
            [r["fiat_value"] for r in rows],
        ]
        con.execute(
            "INSERT INTO wallet_balances SELECT unnest(?), ?, ?, 1, unnest(?), unnest(?),"
            " unnest(?)::DECIMAL(38,18), unnest(?)::DECIMAL(38,18), unnest(?)::DECIMAL(38,8)",
            [columns[0], now, now, *columns[1:]],
        )
    elapsed = time.perf_counter() - start
    con.close()
    return sum(len(b) for b in batches) / elapsed


async def run(requests: int) -> bool:
    with nats_server() as (server, tmp):
        with responder("ekko", server.url, "--db", str(tmp / "ekko.db")):
            nc = await connect(server.url)
            wallets = await create_wallets(nc, WALLETS)
            await outbox_drained(nc, timeout=300)
            rows = [batch(wallets, n) for n in range(requests)]
            bodies = [json.dumps({"items": r}, separators=(",", ":")).encode() for r in rows]
            events_before = await event_count(nc)
            relay_start = time.perf_counter()
            run = await ingest(server.url, bodies)
            pending_at_end = await outbox_pending(nc)
            drained = await outbox_drained(nc, timeout=900)
            relay_seconds = time.perf_counter() - relay_start
            entries = await event_count(nc) - events_before  # rows + the wallets whose balance moved
            await nc.close()
        base_rate = baseline(tmp / "baseline.db", rows)
    print(
        table(
            ["what", "rows", "seconds", "rows/s", "vs bulk INSERT"],
            [
                [
                    f"ekko.wallet_balances.ingest ({ITEMS:,}/request, {INFLIGHT} in flight), sustained",
                    run.committed - run.replies[0][1],
                    f"{run.replies[-1][0] - run.replies[0][0]:.2f}",
                    f"{run.sustained:,.0f}",
                    f"{run.sustained / base_rate:.2f}x",
                ],
                [
                    "same, whole run (the first reply's wait included)",
                    run.committed,
                    f"{run.seconds:.2f}",
                    f"{run.rate:,.0f}",
                    f"{run.rate / base_rate:.2f}x",
                ],
                ["plain bulk INSERT ... SELECT unnest(?) (baseline)", run.committed, "", f"{base_rate:,.0f}", "1.00x"],
            ],
        )
    )
    print(
        f"\nrelay: {entries:,} changes (rows + wallet balance updates); {pending_at_end:,} pending when the last"
        f" ingest replied, drained {drained:.1f} s later: {entries / relay_seconds:,.0f} changes/s to KV and"
        f" EKKO_EVENTS from the first ingest on"
    )
    met = run.sustained >= GOAL
    print(
        f"\ngoal: >= {GOAL:,} rows/s committed, sustained: {run.sustained:,.0f} -> {verdict(met)}"
        " (machine shared, 2 cores)"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 requests instead of 20")
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    raise SystemExit(0 if asyncio.run(run(3 if args.quick else args.requests)) else 1)


if __name__ == "__main__":
    main()
