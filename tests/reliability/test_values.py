"""Well-typed values at the edge of their types are a 400 naming the field, never a 500,
and a refused request changes nothing (issue 9, items 4 and 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.app import Ekko
from service.migration.legacy import Rejected, map_value
from service.model.nesting import MAX_DEPTH, too_deep
from service.model.registry import ENTITIES
from tests import legacy_data as legacy
from tests.client import Client, assert_rejected
from tests.factories import Factory

WALLET = {"blockchain_symbol": "ETH", "address": "0x" + "ab" * 20}
EARLY = "0001-01-01T00:00:00+01:00"  # before year 1 once in UTC
LATE = "9999-12-31T23:59:59-01:00"  # past year 9999 once in UTC


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


DEEP = "<deep>"  # replaced by 1,000 levels of nesting in the JSON text (json.dumps cannot write them)


def dumps(body: Any) -> bytes:
    return json.dumps(body).replace(f'"{DEEP}"', '{"a":' * 1000 + "1" + "}" * 1000).encode()


CREATES: dict[str, tuple[str, dict[str, Any], str]] = {
    "huge exponent": ("wallets", {**WALLET, "balance": "1e999999999"}, "balance"),
    "huge exponent as a number": ("wallets", {**WALLET, "balance": 10**400}, "balance"),
    "beyond DECIMAL(38,18)": ("wallets", {**WALLET, "balance": "100000000000000000000"}, "balance"),
    "NaN": ("wallets", {**WALLET, "balance": "NaN"}, "balance"),
    "sNaN": ("wallets", {**WALLET, "balance": "sNaN"}, "balance"),
    "Infinity": ("wallets", {**WALLET, "balance": "-Infinity"}, "balance"),
    "spaces": ("wallets", {**WALLET, "balance": " 1 "}, "balance"),
    "underscore": ("wallets", {**WALLET, "balance": "1_000"}, "balance"),
    "early timestamp": ("wallet_balances", {"balance": "1", "timestamp": EARLY}, "timestamp"),
    "late timestamp": ("wallet_balances", {"balance": "1", "timestamp": LATE}, "timestamp"),
    "late optional timestamp": ("agents", {"name": "a", "type": "t", "last_run": LATE}, "last_run"),
    "nested JSON field": ("alerts", {"type": "t", "message": "m", "job_spec": DEEP}, "job_spec"),
    "nested just past the limit": ("agents", {"name": "a", "type": "t", "config": nested(MAX_DEPTH)}, "config"),
}


@pytest.mark.parametrize("case", sorted(CREATES))
async def test_an_out_of_range_value_on_create_is_a_400_naming_the_field(
    case: str, ekko: Ekko, client: Client, make: Factory
) -> None:
    entity, fields, field = CREATES[case]
    body = await make.payload(entity, **fields)
    before = await client.ok(f"ekko.{entity}.list", {"limit": 1000})
    reply = await client.raw(f"ekko.{entity}.create", dumps(body), timeout=2)
    assert_rejected(reply, 400, field)
    assert await client.ok(f"ekko.{entity}.list", {"limit": 1000}) == before


async def test_json_fields_nest_up_to_the_documented_limit(client: Client, make: Factory) -> None:
    # The body is level 1 and the field's object level 2: the field holds MAX_DEPTH - 1 levels.
    agent = await make.create("agents", config=nested(MAX_DEPTH - 2))
    assert agent["config"] == nested(MAX_DEPTH - 2)


async def test_out_of_range_values_on_update_are_a_400(client: Client, make: Factory) -> None:
    wallet = await make.create("wallets")
    for fields, field in (
        ({"balance": "sNaN"}, "balance"),
        ({"balance": "1e999999999"}, "balance"),
        ({"balance": "1 000"}, "balance"),
        ({"expected_version": 10**40}, "expected_version"),
    ):
        reply = await client.request("ekko.wallets.update", {"id": wallet["id"], **fields}, timeout=2)
        assert_rejected(reply, 400, field)
    assert await client.ok("ekko.wallets.get", {"id": wallet["id"]}) == wallet


FILTERS: dict[str, tuple[dict[str, Any], str]] = {
    "sNaN": ({"balance": {"gte": "sNaN"}}, "filters.balance.gte"),
    "NaN": ({"balance": {"lt": "NaN"}}, "filters.balance.lt"),
    "Infinity": ({"balance": "Infinity"}, "filters.balance.eq"),
    "huge exponent": ({"balance": {"gt": "1e999999999"}}, "filters.balance.gt"),
    "spaces": ({"balance": {"in": [" 1 "]}}, "filters.balance.in"),
    "big integer": ({"version": 10**40}, "filters.version.eq"),
    "negative big integer": ({"version": {"gt": -(2**63) - 1}}, "filters.version.gt"),
    "early timestamp": ({"created_at": {"gte": EARLY}}, "filters.created_at.gte"),
    "late timestamp": ({"updated_at": {"lt": LATE}}, "filters.updated_at.lt"),
    "deep filter": ({"name": DEEP}, "filters"),
}


@pytest.mark.parametrize("case", sorted(FILTERS))
async def test_an_out_of_range_filter_is_a_400_naming_it(case: str, client: Client, make: Factory) -> None:
    await make.create("wallets")
    filters, field = FILTERS[case]
    reply = await client.raw("ekko.wallets.list", dumps({"filters": filters}), timeout=2)
    assert_rejected(reply, 400, field)


async def test_integers_at_the_edge_of_bigint_still_filter(client: Client, make: Factory) -> None:
    await make.create("wallets")
    assert (await client.ok("ekko.wallets.list", {"filters": {"version": {"lt": 2**63 - 1}}}))["items"]
    assert not (await client.ok("ekko.wallets.list", {"filters": {"version": -(2**63)}}))["items"]


@pytest.mark.parametrize("subject", ["ekko.health", "ekko.database.health", "ekko.admin.sync.verify"])
async def test_a_body_on_a_subject_that_takes_none_is_a_400(subject: str, client: Client) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    for body in (deep, b'{"x":1}', b"[]"):
        reply = await client.raw(subject, body, timeout=5)
        assert_rejected(reply, 400, "body")
    for body in (b"", b"{}", b" { } ", b"null"):
        assert (await client.raw(subject, body, timeout=30)).ok
    assert (await client.request("ekko.health")).body["status"] in ("healthy", "degraded")


async def test_ids_are_case_insensitive_on_every_subject(client: Client, make: Factory) -> None:
    upper = "ABCDEF01-2345-6789-ABCD-EF0123456789"
    wallet = await make.create("wallets", id=upper)
    assert wallet["id"] == upper.lower()
    assert (await client.ok("ekko.wallets.get", {"id": upper}))["id"] == upper.lower()
    balance = await make.create("wallet_balances", wallet_id=upper)
    assert balance["wallet_id"] == upper.lower()
    listed = await client.ok("ekko.wallet_balances.list", {"filters": {"wallet_id": upper}})
    assert [b["id"] for b in listed["items"]] == [balance["id"]]
    by_id = await client.ok("ekko.wallets.list", {"filters": {"id": {"in": [upper]}}})
    assert [w["id"] for w in by_id["items"]] == [upper.lower()]
    updated = await client.ok("ekko.wallets.update", {"id": upper, "name": "upper"})
    assert updated["version"] == 3  # 2: the balance row set the wallet's balance
    reply = await client.ok("ekko.wallets.delete", {"id": upper, "cascade": True})
    assert reply["id"] == upper.lower()
    assert_rejected(await client.request("ekko.wallets.get", {"id": upper.lower()}), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"a":' + b"[" * 64 + b"]" * 64 + b"}", "a"),  # 65 levels with the body
        (b'{"a":' + b"[" * 63 + b"]" * 63 + b"}", None),  # exactly 64
        (b'{"a":"' + b"[" * 100 + b'","b":1}', None),  # brackets inside a string do not nest
        (b'{"a\\"b":"x\\\\","c":' + b"{" * 64 + b"}" * 64 + b"}", "c"),  # escapes do not end strings early
        (b"[" * 65 + b"]" * 65, "body"),
    ],
)
def test_nesting_is_measured_on_the_raw_bytes(body: bytes, field: str | None) -> None:
    assert too_deep(body) == field


def test_a_legacy_timestamp_past_year_9999_fails_that_record_not_the_migration() -> None:
    record = {**legacy.wallet_balance(1, 1), "timestamp": LATE}
    with pytest.raises(Rejected, match="timestamp: is out of range"):
        map_value(ENTITIES["wallet_balances"], record["id"], json.dumps(record).encode(), datetime.now(UTC))
