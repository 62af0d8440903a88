"""Every request gets a reply: random bodies on every subject the service answers get a
success or a 4xx error reply with the service-error headers, never a timeout and never
a 500, and the service stays healthy.

Bodies come from hypothesis strategies: raw bytes, any JSON value, and objects built
from each subject's own field names with values of any type (real ids among them), so
requests get past decoding into the rules and the SQL. The examples are drawn first
(seeded, no shrinking: the failing subject and body are printed) and then sent.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from service.app import Ekko
from service.model.registry import ENTITIES
from tests.client import Client
from tests.factories import EDITS, PAYLOADS, Factory
from tests.unit.test_docs import load_generator

EXAMPLES_PER_SUBJECT = 40
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
        valid = st.integers(1, 10**9).map(lambda n: {**PAYLOADS[entity](n), **parents})
    else:
        valid = st.just({"id": rows[entity], EDITS[entity][0]: EDITS[entity][1]})
    names = [f.name for f in msgspec.structs.fields(spec.create)] + ["expected_version", "id"]
    changes = st.dictionaries(st.sampled_from(names), values, max_size=2)
    return st.tuples(valid, changes).map(lambda pair: {**pair[0], **pair[1]})


def bodies(subject: str, request: Any, rows: dict[str, str]) -> st.SearchStrategy[bytes]:
    ids = list(rows.values())
    values = json_values(ids)
    names = [f.name for f in msgspec.structs.fields(request)] if request is not None else ["id"]
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
    return st.one_of(st.binary(max_size=64), encoded)


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
    execution = await make.create("workflow_executions")
    balance = await make.create("wallet_balances")
    rows = {  # one real row of every entity: its id
        "workflow_executions": execution["id"],
        "workflows": execution["workflow_id"],
        "wallet_balances": balance["id"],
        "wallets": balance["wallet_id"],
        "alerts": (await make.create("alerts", related_wallet_id=balance["wallet_id"]))["id"],
        "agents": (await make.create("agents"))["id"],
        "alert_rules": (await make.create("alert_rules"))["id"],
        "users": (await client.ok("ekko.users.list", {"limit": 1}))["items"][0]["id"],
    }

    sent = 0
    statuses: dict[int, int] = {}
    for n, (subject, request) in enumerate(sorted(subjects().items())):
        for body in draw(subject, request, rows, EXAMPLES_PER_SUBJECT, n):
            try:
                reply = await client.raw(subject, body, timeout=10)
            except TimeoutError:
                raise AssertionError(f"no reply: {subject} {body!r}") from None
            sent += 1
            statuses[reply.status] = statuses.get(reply.status, 0) + 1
            assert reply.status in (200, 400, 401, 403, 404, 409, 429), (
                f"{subject} {body!r} -> {reply.status} {reply.body}"
            )
            if reply.status != 200:
                assert reply.headers["Nats-Service-Error-Code"] == str(reply.status)
                assert reply.headers["Nats-Service-Error"] and reply.error["message"]
    print(f"\n{sent} random requests on {len(subjects())} subjects: replies by status {dict(sorted(statuses.items()))}")
    assert statuses.get(400, 0) > sent / 4, "most random bodies are invalid"
    assert statuses.get(200, 0) > 0, "some got through to the rules and SQL"
    health = await client.ok("ekko.health")
    assert health["database"]["status"] != "unhealthy"
