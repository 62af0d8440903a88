"""The file system under DuckDB: telling its refusals (disk full, read-only, no permission)
from other database errors, and probing whether it takes writes again."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# What DuckDB (and the OS under it) says when the file system refuses a write or an open.
_STORAGE_MARKERS = (
    "no space left",
    "read-only file system",
    "permission denied",
    "disk quota exceeded",
    "input/output error",
    "could not write file",
)
PROBE_BYTES = 1 << 20


def storage_cause(exc: BaseException) -> str | None:
    """The OS's reason when `exc` is the file system refusing DuckDB, else None."""
    text = str(exc)
    return text if any(marker in text.lower() for marker in _STORAGE_MARKERS) else None


def probe(db_path: Path, size: int = PROBE_BYTES) -> str | None:
    """Write, fsync and remove `size` bytes beside the database: None when the file system
    takes them, else its reason. Health asks while a write fault is recorded, so the fault
    clears once space returns even if no write has come since."""
    path = db_path.with_name(db_path.name + ".probe")
    try:
        with path.open("wb") as f:
            f.write(bytes(size))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return str(exc)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return None
