"""The bracket-only depth check of service.model.nesting against a walk over every token."""

from __future__ import annotations

import json
import random
import re

from service.model.nesting import MAX_DEPTH, _within, too_deep

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')


def walked_depth(body: bytes) -> int:
    """The deepest level the token walk reaches: strings skipped whole, escapes included."""
    depth = deepest = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] == 0x22:
            continue
        depth += 1 if token in (b"{", b"[") else -1
        deepest = max(deepest, depth)
    return deepest


def random_value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(5 if depth < 70 else 2)
    if kind == 0:  # strings full of what must not count: brackets, quotes, escapes
        return "".join(rng.choice('ab{}[]"\\/\n\u005b') for _ in range(rng.randrange(6)))
    if kind == 1:
        return rng.choice([1, None, True, ""])
    if kind == 2:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {random_value(rng, 99): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}  # type: ignore[misc]


def test_the_bracket_check_agrees_with_the_token_walk_on_json() -> None:
    rng = random.Random(45)
    for _ in range(3_000):
        value = random_value(rng, 0)
        for _ in range(rng.randrange(70)):  # deep enough, now and then, to cross the limit
            value = rng.choice([[value], {"k": value}])
        body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        for limit in (1, 3, MAX_DEPTH):
            assert _within(body, limit) == (walked_depth(body) <= limit), body


def test_the_bracket_check_never_passes_a_body_the_walk_finds_too_deep() -> None:
    """Any bytes, valid JSON or not (unclosed strings, stray escapes, unbalanced brackets):
    True only when the walk agrees; a False is settled by the walk itself (too_deep)."""
    rng = random.Random(46)
    for alphabet in (b'{}[]"\\ab,: ', b'{}[]"ab,: '):  # with escapes (the regex) and without (the split)
        for _ in range(10_000):
            body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(60)))
            for limit in (1, 2, 4):
                if _within(body, limit):
                    assert walked_depth(body) <= limit, body
    items = json.dumps({"items": [{"s": '[[{{\\"[', "n": [1, {"x": []}]}] * 100}).encode()
    assert too_deep(items) is None


def test_a_batch_of_items_is_within_the_limit_and_one_deep_field_is_named() -> None:
    items = [{"wallet_id": f"w{i}", "note": "[{" * 3} for i in range(5_000)]
    assert too_deep(json.dumps({"items": items}).encode()) is None
    deep = {"items": items, "extra": json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)}
    assert too_deep(json.dumps(deep).encode()) == "extra"
