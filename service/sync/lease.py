"""The writer lease: one process writes a deployment's database (decision 14).

A key `<deployment>.writer` in the KV bucket `ekko_leases` names the process that serves the
deployment: host, pid, absolute database path, instance id. The key is written with a
per-message TTL (nats-server 2.11+) and rewritten every third of it with the revision the
owner last wrote (compare-and-set), so it vanishes `ttl` seconds after its owner stops
heartbeating (crash, SIGKILL, network loss) and nobody can overwrite a live owner.

Taking it: `create` succeeds when the key is absent. When it is present, the taker watches
it: a new revision means the owner is alive (refused at once, `LeaseHeld`); the key
vanishing means its owner died (taken). So a second instance is refused within one
heartbeat, and a restart after a crash waits at most `ttl` for the dead owner's key.

Later roles (read replicas, a standby writer) get keys of their own under the deployment;
failover is a standby waiting in `acquire` instead of exiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import Header, KeyValueConfig
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

LEASE_BUCKET = "ekko_leases"
POLL = 0.25  # seconds between looks at a held lease while waiting for it
RELEASE_TIMEOUT = 2.0  # a clean stop during a NATS outage must not hang on the release
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's "wrong last sequence" error codes


class LeaseOwner(msgspec.Struct, frozen=True):
    """The value of a lease key: who holds it (what an operator needs to find that process)."""

    deployment: str
    instance: str
    host: str
    pid: int
    database: str
    version: str
    started: str
    role: str = "writer"

    def describe(self) -> str:
        return (
            f"instance {self.instance} on host {self.host}, pid {self.pid}, "
            f"database {self.database} (since {self.started})"
        )


class LeaseHeld(Exception):
    """Another live process holds the lease: this one must not serve the deployment."""

    def __init__(self, deployment: str, owner: LeaseOwner | None, ttl: int) -> None:
        who = owner.describe() if owner is not None else "an unreadable lease value"
        super().__init__(
            f"another instance owns deployment {deployment!r}: {who}. One process serves a deployment:"
            f" stop that one first (a lease of a dead process expires {ttl} s after its last heartbeat)."
        )
        self.deployment = deployment
        self.owner = owner


class WriterLease:
    """Take, keep (heartbeat) and release the writer lease of one deployment."""

    def __init__(self, owner: LeaseOwner, ttl: int) -> None:
        self.owner = owner
        self.ttl = ttl
        self.key = f"{owner.deployment}.{owner.role}"
        self.revision = 0  # the revision this process last wrote; 0 = not held
        self._value = msgspec.json.encode(owner)
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self.revision > 0

    async def acquire(self, js: JetStreamContext) -> None:
        """Take the lease, waiting at most `ttl` (+ a margin) for a dead owner's key to expire.
        Raises LeaseHeld as soon as the key is renewed by its owner."""
        self._js, self._kv = js, await _bucket(js)
        deadline = time.monotonic() + self.ttl + 2
        seen: int | None = None
        while True:
            try:
                self.revision = await self._kv.create(self.key, self._value, msg_ttl=self.ttl)
                log.info("writer lease %s/%s taken (ttl %d s)", LEASE_BUCKET, self.key, self.ttl)
                return
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                pass  # held (or expired between create and its own check): look at it
            try:
                entry = await self._kv.get(self.key)
            except KeyNotFoundError:
                continue  # expired just now: take it
            owner = _decode(entry.value)
            if (seen is not None and entry.revision != seen) or time.monotonic() > deadline:
                raise LeaseHeld(self.owner.deployment, owner, self.ttl)
            if seen is None:
                who = owner.describe() if owner else "unknown"
                log.warning(
                    "deployment %r is leased to %s; waiting up to %d s: refused if it heartbeats, taken if it expires",
                    self.owner.deployment,
                    who,
                    self.ttl,
                )
            seen = entry.revision
            await asyncio.sleep(POLL)

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Heartbeat in the background; `on_lost(reason)` once the lease is gone for good."""
        self._heartbeat = asyncio.create_task(self._beat(on_lost), name="writer-lease-heartbeat")

    async def _beat(self, on_lost: Callable[[str], None]) -> None:
        interval = self.ttl / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(interval if time.monotonic() - renewed < interval else 1.0)
            try:
                self.revision = await self._renew()
                renewed = time.monotonic()
            except KeyWrongLastSequenceError:
                if await self._still_ours():
                    renewed = time.monotonic()
                    continue
                # Our key expired, or another process wrote it: it may be serving already.
                self.revision = 0
                on_lost(f"the writer lease {LEASE_BUCKET}/{self.key} was taken or expired")
                return
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                silent = time.monotonic() - renewed
                if silent >= self.ttl:
                    self.revision = 0
                    on_lost(f"the writer lease could not be renewed for {silent:.0f} s ({type(exc).__name__})")
                    return
                log.warning("writer lease heartbeat failed (%s: %s); retrying", type(exc).__name__, exc)

    async def _still_ours(self) -> bool:
        """A renewal whose ack timed out may still have been stored: then the key holds our own
        value (the instance id is unique) at a revision we did not see. Adopt it."""
        assert self._kv is not None
        try:
            entry = await self._kv.get(self.key)
        except (KeyNotFoundError, nats.errors.Error, TimeoutError):
            return False
        if entry.value != self._value or entry.revision is None:
            return False
        self.revision = entry.revision
        return True

    async def _renew(self) -> int:
        """Rewrite the key if it still holds our last revision (kv.update cannot set a TTL)."""
        assert self._js is not None
        headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(self.revision)}
        try:
            ack = await self._js.publish(
                f"$KV.{LEASE_BUCKET}.{self.key}", self._value, headers=headers, msg_ttl=self.ttl, timeout=self.ttl / 3
            )
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=exc.description) from exc
            raise
        return ack.seq

    async def release(self) -> None:
        """Stop heartbeating and delete the key if it is still ours (a clean stop: the next
        instance starts at once instead of waiting for the TTL)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        if self._kv is None or not self.held:
            return
        revision, self.revision = self.revision, 0
        try:
            await asyncio.wait_for(self._kv.delete(self.key, last=revision), RELEASE_TIMEOUT)
            log.info("writer lease %s/%s released", LEASE_BUCKET, self.key)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            log.warning("writer lease not released (%s); it expires in %d s", type(exc).__name__, self.ttl)


async def _bucket(js: JetStreamContext) -> KeyValue:
    try:
        kv = await js.key_value(LEASE_BUCKET)
    except BucketNotFoundError:
        # history 1: only the current owner matters. nats-py enables per-message TTL on new buckets.
        return await js.create_key_value(KeyValueConfig(bucket=LEASE_BUCKET, history=1))
    config = (await kv.status()).stream_info.config
    if not config.allow_msg_ttl:  # made by hand (`nats kv add`): the lease needs per-message TTLs
        config.allow_msg_ttl = True
        await js.update_stream(config)
        log.info("enabled per-message TTL on KV bucket %s", LEASE_BUCKET)
    return kv


def _decode(value: bytes | None) -> LeaseOwner | None:
    try:
        return msgspec.json.decode(value or b"", type=LeaseOwner)
    except msgspec.DecodeError:
        return None
