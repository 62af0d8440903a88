"""Issue 2: every error class gets a reply (never a timeout) with the NATS service error
headers and a JSON body, and a rejected request changes nothing."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from service.app import Ekko
from tests.client import Client, Reply
from tests.factories import Factory
from tests.sync_helpers import relay_idle

EVM = "0x" + "ab" * 20
CODES = {400: "validation_error", 401: "unauthorized", 404: "not_found", 409: "conflict", 500: "internal"}


def assert_error_reply(reply: Reply, status: int, field: str | None = None) -> None:
    """Both headers, and a body whose code, message and details agree with them."""
    assert reply.status == status, reply.body
    assert reply.headers["Nats-Service-Error-Code"] == str(status)
    assert set(reply.body) == {"error"}
    error = reply.error
    assert error["code"] == CODES[status]
    assert error["message"] and reply.headers["Nats-Service-Error"] == error["message"][:512]
    assert isinstance(error["details"], list)
    if field is not None:
        assert field in [d.get("field") for d in error["details"]], error


@dataclass
class World:
    """A few rows every rejected request could have touched."""

    client: Client
    user: dict[str, Any]
    other_user: dict[str, Any]
    wallet: dict[str, Any]
    balance: dict[str, Any]
    workflow: dict[str, Any]

    async def state(self) -> tuple[dict[str, int], list[Any]]:
        health = await self.client.ok("ekko.database.health")
        rows = [
            await self.client.ok(f"ekko.{entity}.get", {"id": row["id"]})
            for entity, row in (
                ("users", self.user),
                ("users", self.other_user),
                ("wallets", self.wallet),
                ("wallet_balances", self.balance),
                ("workflows", self.workflow),
            )
        ]
        return health["tables"], rows


@pytest.fixture
async def world(client: Client) -> World:
    make = Factory(client)
    wallet = await make.create("wallets", address=EVM)
    return World(
        client,
        user=await make.create("users", email="Ada@Example.com"),
        other_user=await make.create("users", email="grace@example.com"),
        wallet=wallet,
        balance=await make.create("wallet_balances", wallet_id=wallet["id"]),
        workflow=await make.create("workflows"),
    )


Case = Callable[[World], Awaitable[Reply]]


def send(subject: str, body: Callable[[World], Any]) -> Case:
    return lambda w: w.client.request(f"ekko.{subject}", body(w))


def send_raw(subject: str, payload: bytes) -> Case:
    return lambda w: w.client.raw(f"ekko.{subject}", payload)


REJECTED: dict[str, tuple[Case, int, str | None]] = {
    # 400: the body is not what the subject takes
    "bad JSON on create": (send_raw("wallets.create", b"{not json"), 400, None),
    "bad JSON on get": (send_raw("wallets.get", b'{"id": '), 400, None),
    "bad JSON on update": (send_raw("wallets.update", b'{"id": "x", '), 400, None),
    "bad JSON on delete": (send_raw("wallets.delete", b"\xff\xfe"), 400, None),
    "bad JSON on list": (send_raw("wallets.list", b"nope"), 400, None),
    "bad JSON on authenticate": (send_raw("users.authenticate", b"{"), 400, None),
    "empty body on create": (send_raw("wallets.create", b""), 400, "blockchain_symbol"),
    "empty body on update": (send_raw("wallets.update", b""), 400, "id"),
    "a list instead of an object": (send("wallets.create", lambda w: [1, 2]), 400, None),
    "a number for a text field": (
        send("wallets.create", lambda w: {"blockchain_symbol": 5, "address": EVM}),
        400,
        "blockchain_symbol",
    ),
    "text for a decimal": (send("wallets.update", lambda w: {"id": w.wallet["id"], "balance": "lots"}), 400, "balance"),
    "a string for a boolean": (
        send("users.update", lambda w: {"id": w.user["id"], "is_active": "no"}),
        400,
        "is_active",
    ),
    "a wrong type deep inside": (
        send("workflows.update", lambda w: {"id": w.workflow["id"], "steps": [{"id": "s", "name": 5, "type": "t"}]}),
        400,
        "steps[0].name",
    ),
    "an id that is not a UUID": (
        send("wallets.create", lambda w: {"id": "42", "blockchain_symbol": "ETH", "address": EVM}),
        400,
        "id",
    ),
    "a missing required field": (send("wallets.create", lambda w: {"blockchain_symbol": "ETH"}), 400, "address"),
    "a missing id on get": (send("wallets.get", lambda w: {}), 400, "id"),
    "an unknown field on create": (
        send("wallets.create", lambda w: {"blockchain_symbol": "ETH", "address": EVM, "colour": "red"}),
        400,
        None,
    ),
    "an unknown field on update": (
        send("wallets.update", lambda w: {"id": w.wallet["id"], "colour": "red"}),
        400,
        None,
    ),
    "an unknown field on delete": (send("wallets.delete", lambda w: {"id": w.wallet["id"], "force": True}), 400, None),
    "an unknown field on list": (send("wallets.list", lambda w: {"where": {}}), 400, None),
    "an unknown filter field": (send("wallets.list", lambda w: {"filters": {"colour": "red"}}), 400, "filters.colour"),
    "an unknown sort field": (send("wallets.list", lambda w: {"sort": ["colour"]}), 400, "sort[0]"),
    "a password too short": (
        send("users.update", lambda w: {"id": w.user["id"], "password": "short"}),
        400,
        "password",
    ),
    "an invalid address": (
        send("wallets.update", lambda w: {"id": w.wallet["id"], "address": "0x123"}),
        400,
        "address",
    ),
    "too many decimal places": (
        send("wallet_balances.update", lambda w: {"id": w.balance["id"], "balance": "0.1234567890123456789"}),
        400,
        "balance",
    ),
    # 401
    "a wrong password": (
        send("users.authenticate", lambda w: {"email": w.user["email"], "password": "wrong pw"}),
        401,
        None,
    ),
    # 404: the row, or a row it points at, does not exist
    "get of a missing row": (send("wallets.get", lambda w: {"id": str(uuid.uuid4())}), 404, None),
    "update of a missing row": (send("wallets.update", lambda w: {"id": str(uuid.uuid4()), "name": "x"}), 404, None),
    "delete of a missing row": (send("wallets.delete", lambda w: {"id": str(uuid.uuid4())}), 404, None),
    "create pointing at a missing parent": (
        send("wallet_balances.create", lambda w: {"wallet_id": str(uuid.uuid4()), "balance": "1"}),
        404,
        "wallet_id",
    ),
    "update pointing at a missing parent": (
        send("wallet_balances.update", lambda w: {"id": w.balance["id"], "wallet_id": str(uuid.uuid4())}),
        404,
        "wallet_id",
    ),
    # 409: it would break a uniqueness or version rule
    "the same id twice": (
        send(
            "wallets.create", lambda w: {"id": w.wallet["id"], "blockchain_symbol": "ETH", "address": "0x" + "cd" * 20}
        ),
        409,
        "id",
    ),
    "an email taken in another case": (
        send("users.create", lambda w: {"email": "ada@EXAMPLE.COM", "password": "long enough"}),
        409,
        "email",
    ),
    "an address taken in another case": (
        send("wallets.create", lambda w: {"blockchain_symbol": "eth", "address": "0x" + "AB" * 20}),
        409,
        "address",
    ),
    "an update onto a taken email": (
        send("users.update", lambda w: {"id": w.other_user["id"], "email": "ADA@example.com"}),
        409,
        "email",
    ),
    "a stale version on update": (
        send("wallets.update", lambda w: {"id": w.wallet["id"], "name": "x", "expected_version": 7}),
        409,
        "expected_version",
    ),
    "a stale version on delete": (
        send("wallets.delete", lambda w: {"id": w.wallet["id"], "expected_version": 7}),
        409,
        "expected_version",
    ),
    "a delete of a row with children": (
        send("wallets.delete", lambda w: {"id": w.wallet["id"]}),
        409,
        "wallet_balances",
    ),
    # admin subjects take typed bodies too
    "bad JSON on migrate": (send_raw("admin.migration.migrate", b"{force"), 400, None),
    "a string for a flag on migrate": (send("admin.migration.migrate", lambda w: {"force": "yes"}), 400, "force"),
    "an unknown flag on migrate": (send("admin.migration.migrate", lambda w: {"dry_run": True}), 400, None),
    "a forced migration while serving": (send("admin.migration.migrate", lambda w: {"force": True}), 409, None),
}


# What each case's message must say (every case has an entry: a case without one fails).
SAYS = {
    **{
        f"bad JSON on {action}": "request body is not valid JSON"
        for action in ("create", "get", "update", "delete", "list", "authenticate")
    },
    "empty body on create": "missing required field `blockchain_symbol`",
    "empty body on update": "missing required field `id`",
    "a list instead of an object": "Expected `object`, got `array`",
    "a missing required field": "missing required field `address`",
    "a missing id on get": "missing required field `id`",
    "an unknown field on create": "unknown field `colour`",
    "an unknown field on update": "unknown field `colour`",
    "an unknown field on delete": "unknown field `force`",
    "an unknown field on list": "unknown field `where`",
    "a wrong password": "invalid email or password",
    "get of a missing row": "not found",
    "update of a missing row": "not found",
    "delete of a missing row": "not found",
    "bad JSON on migrate": "request body is not valid JSON",
    "an unknown flag on migrate": "unknown field `dry_run`",
    "a forced migration while serving": "force is refused while the service runs",
    "a number for a text field": "blockchain_symbol: Expected `str`, got `int`",
    "text for a decimal": "balance: Invalid decimal",
    "a string for a boolean": "is_active: Expected `bool`, got `str`",
    "a wrong type deep inside": "steps[0].name: Expected `str`, got `int`",
    "an id that is not a UUID": "id: Expected `str` matching regex",
    "an unknown filter field": "filters.colour: unknown field",
    "an unknown sort field": "unknown sort field 'colour'",
    "a password too short": "password: Expected `str` of length >= 8",
    "an invalid address": "address: must be 0x followed by 40 hex digits",
    "too many decimal places": "balance: has more than 18 decimal places",
    "create pointing at a missing parent": "wallet_id: wallets",
    "update pointing at a missing parent": "wallet_id: wallets",
    "the same id twice": "already exists",
    "an email taken in another case": "a user with this email already exists",
    "an address taken in another case": "this address is already registered on this chain",
    "an update onto a taken email": "a user with this email already exists",
    # Version 2: the world's balance row set the wallet's balance.
    "a stale version on update": "is at version 2, not 7",
    "a stale version on delete": "is at version 2, not 7",
    "a delete of a row with children": "still has 1 wallet_balances; delete them first or send cascade=true",
    "a string for a flag on migrate": "force: Expected `bool`, got `str`",
}


def test_every_case_says_what_is_wrong() -> None:
    assert not set(REJECTED) - set(SAYS), f"cases with no expected message: {sorted(set(REJECTED) - set(SAYS))}"
    assert not set(SAYS) - set(REJECTED), f"expected messages for no case: {sorted(set(SAYS) - set(REJECTED))}"


@pytest.mark.parametrize("case", list(REJECTED))
async def test_a_rejected_request_gets_an_error_reply_and_changes_nothing(case: str, world: World) -> None:
    request, status, field = REJECTED[case]
    before = await world.state()
    reply = await request(world)
    assert_error_reply(reply, status, field)
    assert case in SAYS, f"no expected message for {case!r}: add what its reply must say to SAYS"
    assert SAYS[case] in reply.error["message"]
    assert await world.state() == before


async def test_the_rows_of_the_world_are_really_there(world: World) -> None:
    tables, rows = await world.state()
    assert tables["users"] == 3 and tables["wallets"] == 1 and tables["wallet_balances"] == 1
    expected = [world.user, world.other_user, world.wallet, world.balance, world.workflow]
    assert [r["id"] for r in rows] == [r["id"] for r in expected]


def assert_no_internals(reply: Reply, *leaks: str) -> str:
    """A 500 says only 'internal error (request id ...)'; returns the request id."""
    assert_error_reply(reply, 500)
    message = reply.error["message"]
    match = re.fullmatch(r"internal error \(request id ([0-9a-f]{16})\)", message)
    assert match, message
    text = reply.headers["Nats-Service-Error"] + str(reply.body)
    for leak in ("SELECT", "Traceback", "Catalog", "duckdb", "Exception", ".py", *leaks):
        assert leak.lower() not in text.lower(), leak
    return match.group(1)


@contextmanager
def table_moved_away(ekko: Ekko, table: str) -> Iterator[None]:
    """A real fault: the table is renamed in the DuckDB file under the running service (and put back after)."""
    con = ekko.db.connection
    indexes = con.execute("SELECT index_name, sql FROM duckdb_indexes() WHERE table_name = ?", [table]).fetchall()
    for name, _ in indexes:
        con.execute(f'DROP INDEX "{name}"')  # DuckDB will not rename a table that has indexes
    con.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_moved_away"')
    try:
        yield
    finally:
        con.execute(f'ALTER TABLE "{table}_moved_away" RENAME TO "{table}"')
        for _, sql in indexes:
            con.execute(sql)


async def test_an_unexpected_failure_replies_500_with_a_request_id_and_no_internals(
    client: Client, ekko: Ekko, caplog: pytest.LogCaptureFixture
) -> None:
    await Factory(client).create("agents")
    await relay_idle(ekko)
    with table_moved_away(ekko, "agents"), caplog.at_level(logging.ERROR, logger="handlers.errors"):
        reply = await client.request("ekko.agents.list", {}, timeout=2)
        assert (await client.request("ekko.wallets.list", {})).ok, "one broken table must not break other subjects"
    request_id = assert_no_internals(reply, "agents_moved_away")
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None, "the log line must carry the request id and the traceback"
    assert len((await client.ok("ekko.agents.list", {}))["items"]) == 1


async def test_an_unexpected_failure_half_way_through_a_write_rolls_the_whole_write_back(
    client: Client, ekko: Ekko
) -> None:
    make = Factory(client)
    wallet = await make.create("wallets")
    alert = await make.create("alerts", related_wallet_id=wallet["id"])
    await relay_idle(ekko)

    async def rows_in_duckdb() -> list[tuple[Any, ...]]:
        sql = "SELECT id, version FROM wallets UNION ALL SELECT id, version FROM alerts ORDER BY id"
        return await ekko.db.read(lambda cur: cur.execute(sql).fetchall())

    before = await rows_in_duckdb()
    assert len(before) == 2
    # A cascading delete removes the wallet's alerts first, then fails looking for its balances.
    with table_moved_away(ekko, "wallet_balances"):
        reply = await client.request("ekko.wallets.delete", {"id": wallet["id"], "cascade": True}, timeout=2)
        assert_no_internals(reply)
        assert await rows_in_duckdb() == before
    assert await client.ok("ekko.alerts.get", {"id": alert["id"]}) == alert
    assert await client.ok("ekko.wallets.delete", {"id": wallet["id"], "cascade": True}) == {
        "id": wallet["id"],
        "deleted": True,
    }
    assert await rows_in_duckdb() == []
