"""How deep a request body may nest, checked on the raw bytes before any JSON parser runs.

JSON parsers recurse once per level: msgspec (and FastStream's json) raise RecursionError
near 1,000 levels, which surfaced as a 500. Bodies nest at most MAX_DEPTH levels of
objects and arrays, the body itself counting as one, so JSON fields stored in DuckDB
(`job_spec`, `config`, `steps`, ...) hold at most MAX_DEPTH - 1 levels.
"""

from __future__ import annotations

import re

MAX_DEPTH = 64
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')


def too_deep(body: bytes) -> str | None:
    """None when `body` nests at most MAX_DEPTH levels; else the top-level field (or "body")
    whose value nests deeper. Costs two byte counts unless the body has > MAX_DEPTH brackets."""
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH:
        return None
    depth = 0
    last_string = b""
    field = b""
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] == 0x22:  # a string: at depth 1 the latest one before a value is its key
            if depth == 1:
                last_string = token
            continue
        if token in (b"{", b"["):
            depth += 1
            if depth == 2:
                field = last_string
            if depth > MAX_DEPTH:
                name = field[1:-1].decode(errors="replace")
                return name[:100] if name else "body"
        else:
            depth -= 1
    return None
