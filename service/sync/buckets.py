"""Read KV buckets fast: one ordered push consumer per bucket on its stream `KV_<bucket>`,
delivering the last message per key (~120k keys/s against ~5k/s for a get per key,
docs/decisions.md). Delete and purge markers are applied here: such a key no longer exists."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from service.model.registry import ENTITY_ORDER

log = logging.getLogger(__name__)


class BucketReadError(Exception):
    """A bucket could not be read to the end (its consumer stalled)."""


class Progress(Protocol):
    """Where long reads and migrations report how far they got (a bar, log lines, nothing)."""

    def start(self, task: str, total: int | None) -> None: ...

    def advance(self, task: str, amount: int) -> None: ...

    def finish(self, task: str) -> None: ...


class NoProgress:
    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, amount: int) -> None:
        pass

    def finish(self, task: str) -> None:
        pass


# Buckets of the legacy API that are out of scope: dumped in backups, never migrated.
EXTRA_BUCKETS = ("nodes", "settings")
_DELETED_OPS = frozenset({"DEL", "PURGE"})
# nats-server 2.11+ places its own markers (TTL, age limits) with this header instead.
_DELETED_MARKERS = frozenset({"MaxAge", "Purge", "Remove"})
PROGRESS_EVERY = 5000
STALL_SECONDS = 15.0


@dataclass
class BucketSnapshot:
    """The latest revision of every key of one bucket."""

    bucket: str
    present: bool
    values: dict[str, bytes] = field(default_factory=dict)  # live keys
    deleted: list[str] = field(default_factory=list)  # keys whose latest revision is a delete/purge marker
    messages: int = 0
    bytes: int = 0
    history: int = 1
    seconds: float = 0.0

    @property
    def keys(self) -> int:
        return len(self.values) + len(self.deleted)


@dataclass
class Snapshot:
    buckets: dict[str, BucketSnapshot]  # the entity buckets (missing ones too) and the extra ones present

    @property
    def has_data(self) -> bool:
        return any(self.buckets[name].keys for name in ENTITY_ORDER)

    @property
    def ignored(self) -> list[str]:
        return [name for name in EXTRA_BUCKETS if name in self.buckets]


async def read_snapshot(js: JetStreamContext, progress: Progress | None = None) -> Snapshot:
    """Every entity bucket (a missing one is reported as not present) and the extra ones that exist."""
    buckets = {name: await read_bucket(js, name, progress) for name in ENTITY_ORDER}
    for name in EXTRA_BUCKETS:
        extra = await read_bucket(js, name, progress)
        if extra.present:
            buckets[name] = extra
    return Snapshot(buckets)


async def read_bucket(js: JetStreamContext, bucket: str, progress: Progress | None = None) -> BucketSnapshot:
    progress = progress or NoProgress()
    started = time.perf_counter()
    stream = f"KV_{bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return BucketSnapshot(bucket, present=False)
    snap = BucketSnapshot(
        bucket,
        present=True,
        messages=info.state.messages,
        bytes=info.state.bytes,
        history=info.config.max_msgs_per_subject or 1,
    )
    if info.state.messages:
        await _consume_latest(js, stream, bucket, snap, progress)
    snap.seconds = time.perf_counter() - started
    log.debug("read bucket %s: %d keys (%d deleted) in %.2f s", bucket, snap.keys, len(snap.deleted), snap.seconds)
    return snap


async def _consume_latest(
    js: JetStreamContext, stream: str, bucket: str, snap: BucketSnapshot, progress: Progress
) -> None:
    prefix = len(f"$KV.{bucket}.")
    values = snap.values
    deleted: dict[str, None] = {}  # an ordered set: a key re-put after its delete leaves it
    done = asyncio.Event()
    task = f"read {bucket}"
    seen = reported = 0
    expected: int | None = None  # messages the consumer delivers for the keys present when it started

    def report_progress() -> None:
        nonlocal reported
        progress.advance(task, seen - reported)
        reported = seen

    async def on_message(msg: Msg) -> None:
        nonlocal seen
        key = msg.subject[prefix:]
        headers = msg.headers
        if headers and (
            headers.get("KV-Operation") in _DELETED_OPS or headers.get("Nats-Marker-Reason") in _DELETED_MARKERS
        ):
            values.pop(key, None)
            deleted[key] = None
        else:
            values[key] = msg.data
            deleted.pop(key, None)
        seen += 1
        if expected is not None and seen - reported >= PROGRESS_EVERY:
            report_progress()
        # Counting spares parsing every reply subject; num_pending confirms the end (an ordered
        # consumer that reset would deliver more than expected).
        if expected is not None and seen >= expected and msg.metadata.num_pending == 0:
            done.set()

    sub = await js.subscribe(
        f"$KV.{bucket}.>",
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        inactive_threshold=60.0,
    )
    try:
        info = await sub.consumer_info()
        if info.delivered is None or info.num_pending is None:  # optional in nats-py; the server sends both
            raise BucketReadError(f"KV bucket {bucket}: consumer info without delivered/num_pending")
        expected = info.delivered.consumer_seq + info.num_pending
        progress.start(task, expected)
        report_progress()
        if seen >= expected:
            done.set()
        last = -1
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), STALL_SECONDS)
            except TimeoutError:
                if seen == last:
                    raise BucketReadError(f"KV bucket {bucket}: stalled after {seen} of {expected} keys") from None
                last = seen
    finally:
        await sub.unsubscribe()
    report_progress()
    progress.finish(task)
    snap.deleted = list(deleted)
