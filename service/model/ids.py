"""Random (version 4) UUIDs drawn from the OS a few thousand at a time.

`uuid.uuid4()` reads 16 bytes from `os.urandom` per call, and that read lets go of the
GIL: under load the event loop then waits for the writer thread to hand it back, about
0.1-0.2 ms per id in a profile of creates (docs/decisions.md). Ids here come from the same
source, read in blocks, so one read serves many ids; they are as unpredictable as uuid4's.
"""

from __future__ import annotations

import hashlib
import os
import threading

_BLOCK = 16 * 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the event loop and the writer thread both draw ids
        self._bytes = b""
        self._at = 0

    def draw(self) -> bytearray:
        with self._lock:
            if self._at >= len(self._bytes):
                self._bytes, self._at = os.urandom(_BLOCK), 0
            start = self._at
            self._at += 16
            return bytearray(self._bytes[start : start + 16])

    def draw_many(self, count: int) -> bytearray:
        """16 * count random bytes."""
        with self._lock:
            available = len(self._bytes) - self._at
            if available >= 16 * count:
                start = self._at
                self._at += 16 * count
                return bytearray(self._bytes[start : self._at])
        return bytearray(os.urandom(16 * count))  # more than a block: read them at once


_pool = _Pool()


def new_id() -> str:
    """A random UUID (version 4, RFC 4122 variant) as its canonical lower-case text."""
    raw = _pool.draw()
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# Version 4 and the RFC 4122 variant set on a whole block of ids at once (bytes.translate).
_VERSION4 = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT = bytes(b & 0x3F | 0x80 for b in range(256))


def new_ids(count: int) -> list[str]:
    """`count` random UUIDs as new_id makes them, for a batch (about a fifth of new_id's time each)."""
    return _as_uuids(_pool.draw_many(count))


def derived_ids(seed: str, count: int) -> list[str]:
    """`count` version 4 UUIDs that are a function of `seed` (itself random): the same seed gives
    the same ids, so a batch's members get stable ids without storing them (the event ids of an
    outbox entry that stands for many changes, service.store.outbox)."""
    raw = bytearray()
    for start in range(0, count, 4):  # blake2b yields at most 64 bytes: four ids per call
        raw += hashlib.blake2b(f"{seed}/{start}".encode()).digest()
    return _as_uuids(raw[: 16 * count])


def _as_uuids(raw: bytearray) -> list[str]:
    raw[6::16] = raw[6::16].translate(_VERSION4)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 32)
    ]
