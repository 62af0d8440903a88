"""Reports and search at 1,000,000 and 100,000 balance rows, and the KV way, in one run.

Builds two DuckDB files with the same 10,000 wallets, 100,000 alerts and 1,000 each of
users, alert rules, workflows and agents; one has 1,000,000 balance rows, the other
100,000 (filled by `INSERT ... SELECT ... FROM range()`, seconds for millions of rows).
The bigger one is copied into the legacy KV buckets on a nats-server of its own (each row
as the JSON DuckDB makes of it, published without waiting for each ack). Then, side by
side, for every measure of bench/measures.py (and bench/balance_measures.py when present):
- p50/p99 of its subject answered by `python -m bench.serve ekko` (a separate process),
  one request at a time, at 1M rows and at 100k rows;
- p50/p99 of the KV way: read every key of the buckets it needs, compute in Python.
Goals, per measure, as ratios of this run: KV way >= 100x slower than ekko at 1M; p50 at
1M <= 1.5x p50 at 100k; p50 < 50 ms. A subject this branch does not serve is "not available".

    python -m bench.report_bench [--quick] [--samples N] [--kv-samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NATS

from bench import balance_measures
from bench.harness import closed_loop, connect, nats_server, percentile, responder, table, verdict
from bench.measures import ALERT_STATUSES, ALERT_TYPES, CHAINS, KINDS, MEASURES, PRIORITIES, Dataset, KvReader, Measure
from service.store.database import Cursor, Database
from service.store.search import rebuild as rebuild_search
from tests import legacy_data

GOAL_RATIO = 100.0
GOAL_GROWTH = 1.5
GOAL_P50 = 0.050
ENTITIES = ("users", "wallets", "alerts", "wallet_balances", "alert_rules", "workflows", "agents")


def _ids(entity: str, n: str = "i") -> str:
    return f"printf('%08x-0000-4000-8000-%012x', {KINDS[entity]}, {n})"


def _pick(values: Sequence[str], n: str) -> str:
    return f"[{', '.join(repr(v) for v in values)}][({n}) % {len(values)} + 1]"


def fill(cur: Cursor, ds: Dataset) -> None:
    """Every row from range(): deterministic, so the 1M and 100k files differ only in balances."""
    now, w = ds.now, ds.wallets
    common = "? - to_seconds(i), ? - to_seconds(i), 1"
    cur.execute(
        "INSERT INTO users (id, created_at, updated_at, version, email, full_name, role, is_active, password_hash)"
        f" SELECT {_ids('users')}, {common}, 'user' || i || '@example.com', 'User ' || i, 'user', true,"
        " '$2b$04$' || repeat('x', 53) FROM range(?) t(i)",
        [now, now, ds.others],
    )
    cur.execute(
        "INSERT INTO wallets (id, created_at, updated_at, version, blockchain_symbol, address, name, balance, status)"
        f" SELECT {_ids('wallets')}, {common}, {_pick(CHAINS, 'i')}, printf('0x%040x', i), 'wallet ' || i,"
        " (i % 1000) + 0.25, CASE WHEN i % 10 = 0 THEN 'inactive' ELSE 'active' END FROM range(?) t(i)",
        [now, now, w],
    )
    span = 30 * 86400 // ds.alerts  # 30 days of alerts
    cur.execute(
        "INSERT INTO alerts (id, created_at, updated_at, version, type, message, status, priority,"
        " related_wallet_id, notifications_enabled)"
        f" SELECT {_ids('alerts')}, ? - to_seconds(i * {span}), ? - to_seconds(i * {span}), 1,"
        f" {_pick(ALERT_TYPES, 'i')}, 'alert ' || i || ' on wallet ' || (i * 7 % {w}), {_pick(ALERT_STATUSES, 'i')},"
        f" {_pick(PRIORITIES, 'i // 3')}, CASE WHEN i % 10 = 0 THEN NULL ELSE {_ids('wallets', f'i * 7 % {w}')} END,"
        " true FROM range(?) t(i)",
        [now, now, ds.alerts],
    )
    per_wallet = ds.balances // w
    step = 365 * 86400 // per_wallet  # a year of history per wallet
    cur.execute(
        "INSERT INTO wallet_balances (id, created_at, updated_at, version, wallet_id, timestamp, balance,"
        " token_price, fiat_value)"
        f" SELECT {_ids('wallet_balances')}, ?, ?, 1, {_ids('wallets', f'i % {w}')},"
        f" ? - to_seconds(({per_wallet} - i // {w}) * {step}), b, 2.5, b * 2.5"
        " FROM (SELECT i, ((i * 37) % 10000) * 0.01 + i // ? AS b FROM range(?) t(i))",
        [now, now, now, w, ds.balances],
    )
    for entity, extra_columns, extra_values in (
        (
            "alert_rules",
            "name, description, condition, action, enabled",
            f"'rule ' || i, 'watch wallet ' || (i * 13 % {w}),"
            f" json_object('wallet', {_ids('wallets', f'i * 13 % {w}')}),"
            ' \'{"notify": "email"}\', true',
        ),
        (
            "workflows",
            "name, description, enabled, steps",
            f"'workflow ' || i, 'checks a wallet', true, json_array(json_object('id', 's1', 'name', 'check',"
            f" 'type', 'balance', 'config', json_object('wallet_id', {_ids('wallets', f'i * 17 % {w}')}),"
            " 'next_steps', json_array()))",
        ),
        ("agents", "name, type, config, status", "'agent ' || i, 'watcher', '{}', 'inactive'"),
    ):
        cur.execute(
            f"INSERT INTO {entity} (id, created_at, updated_at, version, {extra_columns})"
            f" SELECT {_ids(entity)}, {common}, {extra_values} FROM range(?) t(i)",
            [now, now, ds.others],
        )


def build(path: Path, ds: Dataset) -> float:
    start = time.perf_counter()
    db = Database(path, 1).open()
    try:
        db.transaction(lambda cur: fill(cur, ds))
        db.transaction(lambda cur: balance_measures.prepare(cur, ds))  # the derived balance tables
        db.transaction(rebuild_search)  # the rows came in bulk, as a migration brings them
    finally:
        db.close()
    return time.perf_counter() - start


async def copy_to_kv(url: str, path: Path, chunk: int = 2000) -> tuple[int, float]:
    """Every row into its legacy bucket, as pipelined puts: `chunk` publishes to
    `$KV.<bucket>.<key>` (what `kv.put` sends) without waiting, the last of each chunk as a
    JetStream publish whose ack says the stream took the chunk (it stores in arrival order).
    Unpaced publishes were dropped by JetStream (3% of 1M); `kv.put` one at a time is ~6k/s."""
    db = Database(path, 1).open()
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    start = time.perf_counter()
    total = 0
    try:
        js = nc.jetstream()
        for entity in ENTITIES:
            await legacy_data.bucket(js, entity, history=1)
            rows = db.connection.execute(f"SELECT id, to_json(t)::VARCHAR FROM {entity} t").fetchall()
            for first in range(0, len(rows), chunk):
                *ahead, (last_key, last_value) = rows[first : first + chunk]
                for key, value in ahead:
                    await nc.publish(f"$KV.{entity}.{key}", value.encode())
                await js.publish(f"$KV.{entity}.{last_key}", last_value.encode())
            total += len(rows)
            if (held := (await js.stream_info(f"KV_{entity}")).state.messages) != len(rows):
                raise RuntimeError(f"KV_{entity} holds {held} of {len(rows)} values")
    finally:
        db.close()
        await nc.drain()
    return total, time.perf_counter() - start


def measures() -> list[Measure]:
    """The balance questions (bench.balance_measures), then the others."""
    return [*balance_measures.MEASURES, *MEASURES]


def payload(body: dict[str, Any]) -> bytes:
    return msgspec.json.encode(body)


async def unavailable(nc: NATS, measure: Measure, ds: Dataset) -> str | None:
    """Why the subject cannot be measured here (not served, or refuses the request), or None."""
    try:
        msg = await nc.request(measure.subject, payload(measure.body(ds, 0)), timeout=30)
    except nats.errors.NoRespondersError:
        return "not available (no responders)"
    code = (msg.headers or {}).get("Nats-Service-Error-Code")
    if code is None:
        return None
    message = msgspec.json.decode(msg.data).get("error", {}).get("message", "")
    return f"not available ({code}: {message[:60]})"


async def measure_service(url: str, ds: Dataset, wanted: list[Measure], samples: int) -> dict[str, Any]:
    nc = await connect(url)
    results: dict[str, Any] = {}
    try:
        for m in wanted:
            if (why := await unavailable(nc, m, ds)) is not None:
                results[m.name] = why
                continue
            await closed_loop(nc, m.subject, [payload(m.body(ds, i)) for i in range(5)], 1)  # warm up
            run = await closed_loop(nc, m.subject, [payload(m.body(ds, i)) for i in range(samples)], 1)
            results[m.name] = run if not run.errors else f"{run.errors} error replies"
    finally:
        await nc.drain()
    return results


async def measure_kv(url: str, ds: Dataset, wanted: list[Measure], samples: int) -> dict[str, list[float]]:
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    kv = KvReader(nc.jetstream())
    times: dict[str, list[float]] = {}
    try:
        for m in wanted:
            if m.kv_way is None:
                continue
            body = m.body(ds, 0)
            for _ in range(samples):
                start = time.perf_counter()
                await m.kv_way(kv, ds, body)
                times.setdefault(m.name, []).append(time.perf_counter() - start)
            times[m.name].sort()
    finally:
        await nc.drain()
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def run(args: argparse.Namespace) -> bool:
    wanted = measures()
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    sizes = {"big": args.balances, "small": args.balances // 10}
    sets = {k: Dataset(args.wallets, n, args.alerts, args.others, now) for k, n in sizes.items()}
    with nats_server() as (server, tmp), nats_server() as (kv_server, _):
        for key, ds in sets.items():
            seconds = build(tmp / key / "ekko.db", ds)
            print(
                f"built DuckDB with {ds.balances:,} balance rows (+ {ds.wallets:,} wallets,"
                f" {ds.alerts:,} alerts) in {seconds:.1f} s"
            )
        copied, seconds = await copy_to_kv(kv_server.url, tmp / "big" / "ekko.db")
        print(f"copied {copied:,} rows into the legacy KV buckets in {seconds:.1f} s ({copied / seconds:,.0f}/s)")
        found: dict[str, dict[str, Any]] = {}
        for key, ds in sets.items():
            with responder("ekko", server.url, "--db", str(tmp / key / "ekko.db")):
                found[key] = await measure_service(server.url, ds, wanted, args.samples)
        measurable = [m for m in wanted if not isinstance(found["big"][m.name], str)]
        kv_times = await measure_kv(kv_server.url, sets["big"], measurable, args.kv_samples)
    return report(wanted, found, kv_times, sets, judged=not args.quick)


def report(
    wanted: list[Measure],
    found: dict[str, dict[str, Any]],
    kv_times: dict[str, list[float]],
    sets: dict[str, Dataset],
    *,
    judged: bool,
) -> bool:
    big, small = (f"{sets[k].balances // 1000:,}k" for k in ("big", "small"))
    rows, ok = [], True
    for m in wanted:
        at_big, at_small = found["big"][m.name], found["small"][m.name]
        if isinstance(at_big, str) or isinstance(at_small, str):
            rows.append([m.name, at_big if isinstance(at_big, str) else at_small, "", "", "", "", ""])
            continue
        kv = kv_times.get(m.name)
        growth = at_big.p(50) / at_small.p(50)
        ratio = percentile(kv, 50) / at_big.p(50) if kv else float("nan")
        met = growth <= GOAL_GROWTH and at_big.p(50) < GOAL_P50 and (kv is None or ratio >= GOAL_RATIO)
        ok = ok and met
        rows.append(
            [
                m.name,
                f"{ms(at_big.p(50))} / {ms(at_big.p(99))}",
                f"{ms(at_small.p(50))} / {ms(at_small.p(99))}",
                f"{ms(percentile(kv, 50))} / {ms(percentile(kv, 99))}" if kv else "-",
                f"{growth:.2f}x",
                f"{ratio:,.0f}x" if kv else "-",
                verdict(met),
            ]
        )
    print()
    print(
        table(
            [
                "measure",
                f"ekko p50/p99 ms @{big} rows",
                f"@{small} rows",
                "KV way p50/p99 ms",
                f"{big}/{small}",
                "KV/ekko",
                "goals",
            ],
            rows,
        )
    )
    print()
    print(
        f"goals: KV way >= {GOAL_RATIO:.0f}x ekko's p50; p50 at {big} <= {GOAL_GROWTH}x p50 at {small};"
        f" p50 < {GOAL_P50 * 1000:.0f} ms"
    )
    if not judged:
        print("goals are judged on the full run, not on --quick")
        return True
    print(f"every available measure: {verdict(ok)}")
    return ok


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.report_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~30x smaller, fewer samples: proves the bench runs")
    parser.add_argument("--samples", type=int, default=200, help="requests per measure and size (default 200)")
    parser.add_argument("--kv-samples", type=int, default=3, help="runs of each KV way (default 3)")
    args = parser.parse_args(argv)
    args.wallets, args.balances, args.alerts, args.others = 10_000, 1_000_000, 100_000, 1_000
    if args.quick:
        args.wallets, args.balances, args.alerts, args.others = 300, 30_000, 3_000, 30
        args.samples, args.kv_samples = min(args.samples, 20), 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """0 when every available measure meets its goals (or --quick), 1 otherwise."""
    return 0 if asyncio.run(run(parse(argv))) else 1


if __name__ == "__main__":
    raise SystemExit(main())
