"""The event envelope's size and headers: what the relay checks before it publishes, because
nats-server closes the connection of a client that sends more than max_payload."""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest

from schema.events import ChangeEvent
from service.model.columns import utc_now
from service.model.correlation import MAX_CORRELATION_ID, checked_correlation_id
from service.model.errors import ValidationFailed
from service.model.limits import ENVELOPE_RESERVE, header_bytes
from service.model.registry import ENTITY_ORDER
from service.store.outbox import Change
from service.sync.jetstream import JetStreamSync, event_message, message_size, variable_bytes

MAX_PAYLOAD = 64 * 1024


def change(data_size: int, before_size: int | None = None, *, entity_id: str | None = None) -> Change:
    entity = max(ENTITY_ORDER, key=len)  # the longest name: the largest fixed part
    entity_id = entity_id or str(uuid.uuid4())

    def record(size: int) -> bytes:
        return json.dumps({"id": entity_id, "pad": "p" * size}).encode()

    return Change(
        event_id=str(uuid.uuid4()),
        entity=entity,
        action="updated",
        entity_id=entity_id,
        version=2**63 - 1,
        occurred_at=utc_now(),
        data=record(data_size),
        before=None if before_size is None else record(before_size),
        tx_id=str(uuid.uuid4()),
        tx_index=10**9,
        tx_count=10**9,
        correlation_id="c" * MAX_CORRELATION_ID,
    )


@pytest.mark.parametrize("id_length", [36, 300])
def test_everything_but_the_records_and_ids_fits_in_the_envelope_reserve(id_length: int) -> None:
    largest = change(1000, 1000, entity_id="i" * id_length)
    body, headers = event_message(largest, MAX_PAYLOAD)
    assert json.loads(body)["before"] is not None
    fixed = message_size(body, headers) - variable_bytes(largest)
    print(f"\nenvelope and headers besides records and ids: {fixed} bytes of {ENVELOPE_RESERVE}")
    assert fixed <= ENVELOPE_RESERVE


def test_an_update_too_large_for_both_images_goes_without_the_one_before() -> None:
    large = change(MAX_PAYLOAD // 2, MAX_PAYLOAD // 2)
    body, headers = event_message(large, MAX_PAYLOAD)
    event = json.loads(body)
    assert (event["before"], event["before_omitted"]) == (None, True)
    assert event["data"] == json.loads(large.data or b"")
    assert message_size(body, headers) <= MAX_PAYLOAD
    assert JetStreamSync().unpublishable(large, MAX_PAYLOAD) is None


def test_a_record_at_the_budget_still_makes_an_event_that_fits() -> None:
    at_budget = change(0)
    at_budget = change(MAX_PAYLOAD - ENVELOPE_RESERVE - len(at_budget.data or b""))
    assert len(at_budget.data or b"") == MAX_PAYLOAD - ENVELOPE_RESERVE
    body, headers = event_message(at_budget, MAX_PAYLOAD)
    assert len(body) + header_bytes({**headers, "Nats-Expected-Stream": "EKKO_EVENTS"}) <= MAX_PAYLOAD


def test_header_values_are_single_lines_of_visible_ascii() -> None:
    _, headers = event_message(change(10, 10), MAX_PAYLOAD)
    for name, value in headers.items():
        assert value.isascii() and value.isprintable() and value.strip() == value, (name, value)


@pytest.mark.parametrize("value", ["", " x", "x ", "a\r\nb", "a\nb", "x" * (MAX_CORRELATION_ID + 1), "\u00e9", "\x7f"])
def test_a_correlation_id_that_could_break_a_header_is_refused(value: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        checked_correlation_id(value)
    assert refused.value.details[0].field == "Ekko-Correlation-Id"


@pytest.mark.parametrize(
    "value", ["a", "x" * MAX_CORRELATION_ID, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
)
def test_a_usable_correlation_id_is_kept_as_sent(value: str) -> None:
    assert checked_correlation_id(value) == value


def test_events_decode_into_the_struct_old_ones_too() -> None:
    """What a Python consumer does with a message: the records come back as Raw JSON."""
    full = change(10, 20)
    event = msgspec.json.decode(event_message(full, MAX_PAYLOAD)[0], type=ChangeEvent)
    assert (bytes(event.after), bytes(event.before)) == (full.data, full.before)
    assert (event.tx_id, event.tx_index, event.tx_count) == (full.tx_id, full.tx_index, full.tx_count)
    old = b'{"event_id":"e","entity":"wallets","action":"deleted","id":"i","version":3,'
    old += b'"occurred_at":"2026-01-01T00:00:00Z","data":null}'  # as the stream held them before
    event = msgspec.json.decode(old, type=ChangeEvent)
    assert (bytes(event.data), bytes(event.before), event.tx_count, event.correlation_id) == (b"null", b"null", 1, None)
