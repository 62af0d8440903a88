"""Random (version 4) UUIDs drawn from the OS a few thousand at a time.

`uuid.uuid4()` reads 16 bytes from `os.urandom` per call, and that read lets go of the
GIL: under load the event loop then waits for the writer thread to hand it back, about
0.1-0.2 ms per id in a profile of creates (docs/decisions.md). Ids here come from the same
source, read in blocks, so one read serves many ids; they are as unpredictable as uuid4's.
"""

from __future__ import annotations

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


_pool = _Pool()


def new_id() -> str:
    """A random UUID (version 4, RFC 4122 variant) as its canonical lower-case text."""
    raw = _pool.draw()
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
