"""Values shaped like those the legacy JetStream-only API left in KV
(docs/legacy-format.md): snake_case JSON of the old models, floats for money, naive
ISO timestamps, null created_at on some wallets, old field names on executions.

Each factory returns a dict (tests tweak it) for record number n; `put_all`
writes many values with many puts in flight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError

from service.model.registry import ENTITY_ORDER

BASE_TIME = datetime(2024, 3, 1, 12, 0, 0)
# Every registered entity's bucket, then buckets outside ekko's scope.
KINDS = {bucket: n for n, bucket in enumerate((*ENTITY_ORDER, "nodes", "settings"), start=1)}


def uid(bucket: str, n: int) -> str:
    """A UUID-shaped id that says which bucket and which record it is."""
    return f"{KINDS[bucket]:08x}-0000-4000-8000-{n:012x}"


def naive(n: int = 0) -> str:
    """`datetime.now().isoformat()` as the legacy API wrote it: no timezone."""
    return (BASE_TIME + timedelta(seconds=n, microseconds=n % 7 * 1000)).isoformat()


def user(n: int, password_hash: str) -> dict[str, Any]:
    return {
        "id": uid("users", n),
        "email": f"user{n}@example.com",
        "full_name": f"User {n}",
        "role": "user",
        "is_active": True,
        "created_at": naive(n),
        "updated_at": naive(n),
        "hashed_password": password_hash,
    }


def wallet(n: int) -> dict[str, Any]:
    return {
        "id": uid("wallets", n),
        "blockchain_symbol": "ETH",
        "address": f"0x{n:040x}",
        "name": f"wallet {n}",
        "balance": n + 0.1,
        "status": "active",
        "created_at": None if n % 10 == 0 else naive(n),
        "updated_at": None,
    }


def alert(n: int, wallet_n: int) -> dict[str, Any]:
    return {
        "id": uid("alerts", n),
        "type": "price",
        "message": f"price moved {n}",
        "time": "2024-03-01 12:00",
        "status": "active",
        "icon": None,
        "priority": "medium",
        "related_wallet_id": uid("wallets", wallet_n),
        "query": None,
        "job_spec": {"cron": "*/5 * * * *", "threshold": 0.25},
        "notifications_enabled": True,
    }


def wallet_balance(n: int, wallet_n: int) -> dict[str, Any]:
    return {
        "id": uid("wallet_balances", n),
        "wallet_id": uid("wallets", wallet_n),
        "timestamp": naive(n),
        "balance": n * 0.1,
        "token_price": 3012.4567,
        "fiat_value": n * 301.24567,
    }


def alert_rule(n: int, user_n: int) -> dict[str, Any]:
    return {
        "id": uid("alert_rules", n),
        "name": f"rule {n}",
        "description": None,
        "condition": {"metric": "balance", "op": ">", "value": 1.5},
        "action": {"notify": "email"},
        "enabled": True,
        "created_at": naive(n),
        "updated_at": naive(n),
        "created_by": uid("users", user_n),
    }


def workflow(n: int, user_n: int) -> dict[str, Any]:
    steps = [
        {"id": "s1", "name": "fetch", "type": "http", "config": {"url": "https://example.com"}, "next_steps": ["s2"]},
        {"id": "s2", "name": "notify", "type": "email", "config": {}, "next_steps": []},
    ]
    return {
        "id": uid("workflows", n),
        "name": f"workflow {n}",
        "description": "legacy",
        "enabled": True,
        "steps": steps,
        "created_at": naive(n),
        "updated_at": naive(n),
        "created_by": uid("users", user_n),
    }


def workflow_execution(n: int, workflow_n: int) -> dict[str, Any]:
    return {
        "id": uid("workflow_executions", n),
        "workflow_id": uid("workflows", workflow_n),
        "status": "completed",
        "start_time": naive(n),
        "end_time": naive(n + 5),
        "result": {"ok": True, "items": n},
        "error": None,
    }


def agent(n: int, user_n: int) -> dict[str, Any]:
    return {
        "id": uid("agents", n),
        "name": f"agent {n}",
        "type": "monitor",
        "config": {"interval": 60},
        "status": "active",
        "last_run": naive(n),
        "created_at": naive(n),
        "updated_at": naive(n),
        "created_by": uid("users", user_n),
    }


def encoded(record: dict[str, Any]) -> bytes:
    """What the legacy API stored: `json.dumps(model.dict())`."""
    return json.dumps(record).encode()


async def bucket(js: JetStreamContext, name: str, history: int = 10) -> Any:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=name, history=history))


async def put_all(js: JetStreamContext, name: str, values: Iterable[tuple[str, bytes]], inflight: int = 1000) -> None:
    """Put many values, `inflight` at a time (one at a time is ~2-3k/s: `python -m bench.kv_sync_probe`)."""
    kv = await bucket(js, name)
    batch: list[tuple[str, bytes]] = []
    for item in values:
        batch.append(item)
        if len(batch) == inflight:
            await asyncio.gather(*(kv.put(k, v) for k, v in batch))
            batch = []
    await asyncio.gather(*(kv.put(k, v) for k, v in batch))
