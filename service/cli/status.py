"""`ekko status`: how a running service is doing, asked over NATS (ekko.health, ekko.metrics)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from service.cli.common import EXIT_FAILED, EXIT_OK, add_command, add_json_flag, request_service
from service.config import Settings

STATUS_HELP = """Ask the running service, over NATS, for its health (ekko.health), its metrics
(ekko.metrics) and which instance it is (version, deployment, host, pid, database, uptime),
and print a summary; --json prints both replies in full.

Exit status 0 when the service reports healthy, 1 when degraded or unhealthy (or nothing
answers), 4 when NATS cannot be reached."""


def add_commands(subparsers: Any) -> None:
    status = add_command(
        subparsers,
        "status",
        summary="health, metrics summary and instance info of the running service",
        description=STATUS_HELP,
        env=("NATS_URL", "EKKO_LOG_LEVEL", "EKKO_LOG_FORMAT"),
    )
    add_json_flag(status)
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (default 10)")
    status.set_defaults(func=run_status)


async def run_status(args: argparse.Namespace, settings: Settings) -> int:
    health = msgspec.json.decode(await request_service(settings, "health", timeout=args.timeout))
    metrics = msgspec.json.decode(await request_service(settings, "metrics", timeout=args.timeout))
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode({"health": health, "metrics": metrics})).decode())
        sys.stdout.write("\n")
    else:
        show(health, metrics)
    return EXIT_OK if health["status"] == "healthy" else EXIT_FAILED


def show(health: dict[str, Any], metrics: dict[str, Any]) -> None:
    i, db = metrics["instance"], health["database"]
    print(f"ekko {i['version']}  deployment {i['deployment']}  pid {i['pid']} on {i['host']}")
    print(f"  database {i['database']}  up {i['uptime_seconds']:.0f} s")
    nats = health["nats"]
    print(f"health: {health['status']}  (NATS {'connected' if nats['connected'] else 'DISCONNECTED'}", end="")
    print(f" to {nats.get('server')}, JetStream {'ok' if health['jetstream']['ok'] else 'FAILING'})")
    tables = ", ".join(f"{name} {count}" for name, count in db["tables"].items())
    print(f"  database {db['status']}: schema v{db['schema_version']}, {db['size_bytes']} bytes; rows: {tables}")
    integrity = metrics["integrity"]
    checked = "never checked" if integrity["ok"] is None else f"{'ok' if integrity['ok'] else 'FAILED'}"
    print(f"  integrity: {checked}" + (f" at {integrity['checked_at']}" if integrity["checked_at"] else ""))
    pool, writer, relay, cache = metrics["pool"], metrics["writer"], metrics["relay"], metrics["cache"]
    print(
        f"pool: {pool['in_use']}/{pool['size']} in use, {pool['waiting']} waiting,"
        f" {pool['waits']} waits ({pool['wait_seconds']:.3f} s)"
    )
    group = writer["group_size"]
    print(f"writer: queue {writer['queue_length']}, {group['count']} groups, {group['mean']:.1f} writes per group")
    lag = "-" if relay["lag_seconds"] is None else f"{relay['lag_seconds']:.3f} s"
    print(
        f"relay: {'on' if relay['enabled'] else 'off'}, published {relay['published']}, pending {relay['pending']},"
        f" lag {lag}, failed attempts {relay['failed_attempts']}"
        + (f", last error {relay['last_error']}" if relay["last_error"] else "")
    )
    print(f"cache: {cache['hits']} hits, {cache['misses']} misses, {cache['entries']} entries")
    requests = metrics["requests"]
    if requests:
        print(f"{'subject':<40} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for subject, s in requests.items():
            latency = s["latency_ms"]
            print(f"{subject:<40} {s['requests']:>9} {s['errors']:>7} {latency['p50']:>8.2f} {latency['p99']:>8.2f}")
