"""Read nats-server.conf into Python values, enough to list its users and their permissions.

The format (https://docs.nats.io/running-a-nats-service/configuration) is a relaxed JSON:
`key: value`, `key = value` or `key value`; maps in `{}`, arrays in `[]` with commas or
newlines between items; `#` and `//` comments; bare words; `$NAME` is a variable defined
earlier in the file, else an environment variable (left as the text `$NAME` here).
Includes and units are not interpreted (ekko's file uses neither in what is read).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"""\s+|(?:\#|//)[^\n]*                # blanks and comments: skipped
    |(?P<string>"(?:[^"\\]|\\.)*"|'[^']*')  # quoted text
    |(?P<punct>[{}\[\],:=])
    |(?P<word>[^\s{}\[\],:=\#"']+)          # a bare word: name, number, $VARIABLE, 8MB""",
    re.VERBOSE,
)


def tokens(text: str) -> list[tuple[str, str]]:
    found = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is not None:
            value = match.group(kind)
            found.append((kind, value[1:-1] if kind == "string" else value))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokens(text)
        self.at = 0
        self.variables: dict[str, Any] = {}

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ValueError("nats-server.conf ends too early")
        self.at += 1
        return token

    def map_body(self, end: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (token := self.peek()) is not None and token != ("punct", end):
            kind, key = self.take()
            if kind == "punct":
                if key == ",":
                    continue
                raise ValueError(f"nats-server.conf: a key expected, got {key!r}")
            if self.peek() in (("punct", ":"), ("punct", "=")):
                self.take()
            result[key] = self.value()
            if end is None:  # the top level: later `$NAME` may refer to this key
                self.variables[key] = result[key]
        if end is not None:
            self.take()
        return result

    def value(self) -> Any:
        kind, text = self.take()
        if (kind, text) == ("punct", "{"):
            return self.map_body("}")
        if (kind, text) == ("punct", "["):
            items = []
            while self.peek() != ("punct", "]"):
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                items.append(self.value())
            self.take()
            return items
        if kind == "word" and text.startswith("$"):
            return self.variables.get(text[1:], text)
        return text


def parse(text: str) -> dict[str, Any]:
    return _Parser(text).map_body(None)


def users(path: Path) -> dict[str, dict[str, list[str]]]:
    """user -> {"publish": [...], "subscribe": [...]} (subjects it may publish and subscribe to)."""
    conf = parse(path.read_text())
    found = {}
    for user in conf["authorization"]["users"]:
        permissions = user.get("permissions", {})
        found[user["user"]] = {
            verb: [rule] if isinstance(rule := permissions.get(verb, []), str) else list(rule)
            for verb in ("publish", "subscribe")
        }
    return found


def matches(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (`*` one token, `>` one or more tokens) covers `subject`."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)
