"""service.migration.legacy: one legacy KV value -> the row (and record) it becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.migration.legacy import Mapped, Rejected, map_value
from service.model.registry import ENTITIES
from tests import legacy_data as legacy

NOW = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
HASH = "$2b$12$abcdefghijklmnopqrstuu2Wn3Jx0dM4ifd1vXWXm5N2AYHpVObW6"


def mapped(entity: str, value: dict[str, Any] | bytes) -> Mapped:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    key = value["id"] if isinstance(value, dict) and value.get("id") else "the-key"
    return map_value(ENTITIES[entity], key, data, NOW)


def rejection(entity: str, value: dict[str, Any] | bytes) -> str:
    with pytest.raises(Rejected) as caught:
        mapped(entity, value)
    return str(caught.value)


def test_float_amounts_become_exact_decimals_at_their_columns_scale() -> None:
    """On-chain amounts keep 18 places, fiat values 8; read from the JSON text, never a float."""
    wallet = mapped("wallets", {**legacy.wallet(1), "balance": 0.1}).record
    data = b'{"id": "b1", "wallet_id": "00000000-0000-4000-8000-000000000001", "timestamp": "2025-01-01T00:00:00",'
    data += b' "balance": 1.1234567890123456789, "token_price": 3e-19, "fiat_value": 12345678901234567890.123456789}'
    balance = map_value(ENTITIES["wallet_balances"], "b1", data, NOW)
    assert wallet.balance == Decimal("0.1")
    assert balance.record.balance == Decimal("1.123456789012345679")  # 19 places rounded to 18
    assert balance.record.token_price == Decimal("0E-18")
    assert balance.record.fiat_value == Decimal("12345678901234567890.12345679")
    assert balance.row["balance"] == "1.123456789012345679"


def test_naive_timestamps_are_read_as_utc() -> None:
    balance = mapped("wallet_balances", {**legacy.wallet_balance(1, 1), "timestamp": "2024-03-01T12:00:00.250000"})
    assert balance.record.timestamp == datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert balance.row["timestamp"] == datetime(2024, 3, 1, 12, 0, 0, 250000)  # DuckDB stores naive UTC


def test_timestamps_with_an_offset_are_converted_to_utc() -> None:
    rule = mapped("alert_rules", {**legacy.alert_rule(1, 1), "created_at": "2024-03-01T14:00:00+02:00"})
    assert rule.record.created_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_null_created_at_and_updated_at_become_the_migration_time() -> None:
    wallet = mapped("wallets", {**legacy.wallet(1), "created_at": None, "updated_at": None})
    assert wallet.filled == {"created_at", "updated_at"}
    assert wallet.record.created_at == wallet.record.updated_at == NOW
    assert wallet.row["created_at"] is None  # filled on insert, so a re-run can tell it apart


def test_legacy_records_get_version_one() -> None:
    assert mapped("agents", legacy.agent(1, 1)).record.version == 1


def test_values_ekko_itself_wrote_keep_their_version_and_new_field_names() -> None:
    execution = legacy.workflow_execution(1, 1)
    del execution["start_time"]
    execution.update(version=4, started_at="2024-03-01T12:00:00Z", created_at="2024-03-01T12:00:00Z")
    record = mapped("workflow_executions", execution).record
    assert record.version == 4
    assert record.started_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_old_execution_field_names_map_to_todays() -> None:
    execution = {**legacy.workflow_execution(1, 1), "error": "timed out"}
    record = mapped("workflow_executions", execution).record
    assert record.started_at == datetime.fromisoformat(execution["start_time"]).replace(tzinfo=UTC)
    assert record.completed_at == datetime.fromisoformat(execution["end_time"]).replace(tzinfo=UTC)
    assert record.error_message == "timed out"


def test_the_bcrypt_hash_is_kept_as_the_password_hash_column() -> None:
    user = mapped("users", legacy.user(1, HASH))
    assert user.secrets == {"password_hash": HASH}
    assert user.row["password_hash"] == HASH
    assert not hasattr(user.record, "password_hash")


def test_chain_symbols_are_upper_cased_and_addresses_trimmed_as_on_create() -> None:
    wallet = mapped("wallets", {**legacy.wallet(1), "blockchain_symbol": "eth", "address": f" 0x{'aB' * 20} "}).record
    assert (wallet.blockchain_symbol, wallet.address) == ("ETH", f"0x{'aB' * 20}")


def test_json_fields_are_stored_as_json_text() -> None:
    workflow = mapped("workflows", legacy.workflow(1, 1))
    assert json.loads(workflow.row["steps"])[0]["name"] == "fetch"
    assert workflow.record.steps[1].type == "email"


def test_a_missing_id_is_taken_from_the_key() -> None:
    value = legacy.agent(1, 1)
    del value["id"]
    assert map_value(ENTITIES["agents"], "agent-key", json.dumps(value).encode(), NOW).record.id == "agent-key"


def test_fields_todays_records_lack_are_dropped() -> None:
    assert "legacy_flag" not in mapped("agents", {**legacy.agent(1, 1), "legacy_flag": True}).row


@pytest.mark.parametrize(
    ("entity", "value", "reason"),
    [
        ("wallets", b"{not json", "not valid JSON"),
        ("wallets", b"[1, 2]", "Expected `object`, got `array`"),
        ("users", {"id": "u", "full_name": "No Email", "hashed_password": HASH}, "missing required field `email`"),
        ("users", {**legacy.user(1, HASH), "email": "not-an-email"}, "at `$.email`"),
        ("wallets", {**legacy.wallet(1), "address": "0x1234"}, "address: must be 0x followed by 40 hex digits"),
        ("wallets", {**legacy.wallet(1), "blockchain_symbol": "DOGE"}, "unsupported blockchain 'DOGE'"),
        ("wallets", {**legacy.wallet(1), "balance": "a lot"}, "balance"),
        ("wallets", {**legacy.wallet(1), "balance": 1e21}, "must be less than 10^20"),
        ("alerts", {**legacy.alert(1, 1), "related_wallet_id": "wallet-one"}, "at `$.related_wallet_id`"),
        ("workflow_executions", {**legacy.workflow_execution(1, 1), "workflow_id": None}, "workflow_id"),
        ("agents", {**legacy.agent(1, 1), "version": 0}, "version must be at least 1"),
    ],
)
def test_a_value_that_does_not_fit_is_rejected_with_a_reason(entity: str, value: Any, reason: str) -> None:
    assert reason in rejection(entity, value)


def test_an_id_that_differs_from_its_key_is_rejected() -> None:
    data = json.dumps(legacy.wallet(1)).encode()
    with pytest.raises(Rejected, match="differs from its key"):
        map_value(ENTITIES["wallets"], "another-key", data, NOW)


@pytest.mark.parametrize("bad", ["", "plaintext-password", "$2b$12$short", "$1$md5crypt$abcdefghijklmnopqrstuv"])
def test_a_password_hash_bcrypt_cannot_read_is_rejected(bad: str) -> None:
    assert "hashed_password: is not a bcrypt hash" in rejection("users", legacy.user(1, bad))


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_hashes_of_every_variant_are_kept(prefix: str) -> None:
    hashed = prefix + HASH[4:]
    assert mapped("users", legacy.user(1, hashed)).secrets == {"password_hash": hashed}
