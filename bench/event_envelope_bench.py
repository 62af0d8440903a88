"""What the fuller event envelope costs the relay per change: building one event's body and
headers (before and after images, transaction, correlation id, eight Ekko-* headers) beside
the bare envelope (body with `data` only, Nats-Msg-Id) measured in the same run.

    python -m bench.event_envelope_bench [--n N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import timeit
import uuid
from collections.abc import Callable

from schema.common import encode
from service.model.columns import utc_now
from service.store.outbox import Change
from service.sync.jetstream import change_event, event_message

MAX_PAYLOAD = 8 * 1024 * 1024


def sample_change(record_bytes: int) -> Change:
    entity_id = str(uuid.uuid4())
    record = json.dumps({"id": entity_id, "name": "n" * record_bytes, "version": 2}).encode()
    return Change(
        event_id=str(uuid.uuid4()),
        entity="wallet_balances",
        action="updated",
        entity_id=entity_id,
        version=2,
        occurred_at=utc_now(),
        data=record,
        before=record,
        tx_id=str(uuid.uuid4()),
        correlation_id="order-7",
    )


def bare(change: Change) -> tuple[bytes, dict[str, str]]:
    """Near the envelope as it was (given a change without before or correlation id): one header."""
    return encode(change_event(change)), {"Nats-Msg-Id": change.event_id}


def per_call_us(fn: Callable[[Change], object], change: Change, n: int) -> float:
    """Best of 15 runs of n calls: the machine is shared, the minimum is the least disturbed."""
    return min(timeit.repeat(lambda: fn(change), number=n, repeat=15)) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args()
    print(f"{'record':>8} {'bare µs':>9} {'envelope µs':>12} {'ratio':>6}")
    for size in (200, 2_000, 50_000):
        change = sample_change(size)
        old = per_call_us(bare, dataclasses.replace(change, before=None, correlation_id=None), args.n)
        new = per_call_us(lambda c: event_message(c, MAX_PAYLOAD), change, args.n)
        print(f"{size:>8} {old:>9.2f} {new:>12.2f} {new / old:>6.2f}")


if __name__ == "__main__":
    main()
