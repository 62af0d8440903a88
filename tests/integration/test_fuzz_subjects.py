"""Every request gets a reply: random bodies on every subject the service answers get a
success or a 4xx error reply with the service-error headers, never a timeout and never
a 500, and the service stays healthy.

Bodies come from hypothesis strategies: raw bytes, any JSON value, and objects built
from each subject's own field names with values of any type (real ids among them), so
requests get past decoding into the rules and the SQL. The examples are drawn first
(seeded, no shrinking: the failing subject and body are printed) and then sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.client import Client
from tests.factories import MAX_N, Factory, edit_of, payload_of
from tests.support import load_generator

EXAMPLES_PER_SUBJECT = 40
# Values at the edge of their types (issue 9): each must be a 4xx naming the field, never a 500.
EDGE_STRINGS = [
    "NaN",
    "sNaN",
    "-sNaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e999999999",
    "-1e-999999999",
    "1e16",
    "9999999999999999.99999999",
    " 1 ",
    "1_000",
    "0x10",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2024-02-30T00:00:00Z",
    "ABCDEF01-2345-6789-ABCD-EF0123456789",
]
EDGE_INTEGERS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**40, -(10**40), 10**400]
SKIPPED = {"ekko.admin.backup"}  # each call writes a backup directory; covered by the migration tests


def subjects() -> dict[str, Any]:
    """subject -> request type (None: the body is ignored), as docs/schemas.json lists them."""
    return {subject: request for subject, (request, _) in load_generator().subjects().items() if subject not in SKIPPED}


def json_values(ids: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(EDGE_INTEGERS),
        st.sampled_from(EDGE_STRINGS),
        st.integers(1, 120).map(nested),
        st.text(max_size=40),
        st.sampled_from(ids),
        st.sampled_from(
            [
                "",
                "0x" + "ab" * 20,
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                "1.5",
                "-1",
                "1e400",
                "2024-01-01T00:00:00Z",
                "not-a-date",
                "ETH",
                "BTC",
                "a@b.co",
                "é" * 300,
            ]
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
        max_leaves=12,
    )


def nested(depth: int) -> Any:
    """`depth` levels of objects and arrays, around the documented limit (64) and past it."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def deep_bodies(names: list[str]) -> st.SearchStrategy[bytes]:
    """Bodies nested deeper than any JSON parser's recursion (json.dumps cannot write them)."""
    depths = st.sampled_from([63, 64, 65, 1_000, 10_000])
    arrays = depths.map(lambda n: b"[" * n + b"]" * n)
    in_a_field = st.tuples(st.sampled_from(names), depths).map(
        lambda pair: b'{"%s":' % pair[0].encode() + b'{"a":' * pair[1] + b"1" + b"}" * (pair[1] + 1)
    )
    return st.one_of(arrays, in_a_field)


def mutations(subject: str, rows: dict[str, str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any] | None:
    """For create/update: a valid body (real parents, a real row) with one or two fields
    replaced by anything, so most requests reach the rules, the checks and the SQL."""
    parts = subject.split(".")
    entity, action = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    if entity not in ENTITIES or action not in ("create", "update"):
        return None
    spec = ENTITIES[entity]
    parents = {fk.field: rows[fk.parent] for fk in spec.foreign_keys}
    if action == "create":
        valid = st.integers(1, MAX_N).map(lambda n: {**payload_of(entity, n), **parents})
    else:
        field, value = edit_of(entity)
        valid = st.just({"id": rows[entity], field: value})
    names = [f.name for f in msgspec.structs.fields(spec.create)] + ["expected_version", "id"]
    changes = st.dictionaries(st.sampled_from(names), values, max_size=2)
    return st.tuples(valid, changes).map(lambda pair: {**pair[0], **pair[1]})


def bodies(subject: str, request: Any, rows: dict[str, str]) -> st.SearchStrategy[bytes]:
    ids = list(rows.values())
    values = json_values(ids)
    # A request without fields ({}) is fuzzed with a field it does not have.
    names = [f.name for f in msgspec.structs.fields(request)] if request is not None else []
    names = names or ["id"]
    if "filters" in names:  # list: filters keyed by real field names, with operator objects
        ops = st.dictionaries(
            st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "is_null", "like"]),
            values,
            min_size=1,
            max_size=2,
        )
        fields = st.sampled_from(["id", "created_at", "balance", "address", "email", "name", "version", "nope"])
        values = st.one_of(values, st.dictionaries(fields, st.one_of(values, ops), max_size=3))
    own_fields = st.fixed_dictionaries({}, optional=dict.fromkeys(names, values))
    any_keys = st.dictionaries(st.one_of(st.sampled_from(names), st.text(max_size=8)), values, max_size=len(names) + 1)
    shapes = [values, any_keys, own_fields, own_fields]
    if (mutated := mutations(subject, rows, values)) is not None:
        shapes += [mutated] * 4
    encoded = st.one_of(*shapes).map(lambda v: json.dumps(v).encode())
    return st.one_of(st.binary(max_size=64), encoded, encoded, encoded, deep_bodies(names))


def draw(subject: str, request: Any, rows: dict[str, str], count: int, subject_seed: int) -> list[bytes]:
    drawn: list[bytes] = []

    @seed(subject_seed)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies(subject, request, rows))
    def collect(body: bytes) -> None:
        drawn.append(body)

    collect()
    return drawn


async def test_random_bodies_on_every_subject_get_a_reply_and_never_a_500(ekko: Ekko, client: Client) -> None:
    make = Factory(client)
    rows = {name: (await make.create(name))["id"] for name in ENTITIES}  # one real row of every entity: its id

    sent = answered = 0
    statuses: dict[int, int] = {}

    async def send(subject: str, body: bytes) -> None:
        nonlocal sent, answered
        sent += 1
        try:
            reply = await client.raw(subject, body, timeout=10)
        except TimeoutError:
            raise AssertionError(f"no reply: {subject} {body!r}") from None
        answered += 1
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        assert reply.status in (200, 400, 401, 403, 404, 409, 429), f"{subject} {body!r} -> {reply.status} {reply.body}"
        if reply.status != 200:
            assert reply.headers["Nats-Service-Error-Code"] == str(reply.status)
            assert reply.headers["Nats-Service-Error"] and reply.error["message"]

    # A subject's bodies go out together (as many callers would send them): the writes among
    # them share the writer's groups instead of waiting for a commit each.
    for n, (subject, request) in enumerate(sorted(subjects().items())):
        await asyncio.gather(*(send(subject, body) for body in draw(subject, request, rows, EXAMPLES_PER_SUBJECT, n)))
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    print(
        f"\nhostile requests on {len(subjects())} subjects: sent {sent}, answered {answered},"
        f" answered 5xx {server_errors}; replies by status {dict(sorted(statuses.items()))}"
    )
    assert statuses.get(400, 0) > sent / 4, "most random bodies are invalid"
    assert statuses.get(200, 0) > 0, "some got through to the rules and SQL"
    health = await client.ok("ekko.health")
    assert health["database"]["status"] != "unhealthy"
