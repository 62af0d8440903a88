"""tests/fixtures/entities.json holds one valid create payload and one edit per entity;
the tests that go through every entity take them from there. A new entity without an
entry fails here first, with what to add."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from service.model.registry import ENTITIES
from tests.factories import ENTITY_FIXTURES, MAX_N, edit_of, fixture, payload_of


def test_every_registered_entity_has_an_entry_and_no_entry_is_stale() -> None:
    missing = sorted(set(ENTITIES) - set(ENTITY_FIXTURES))
    assert not missing, f"tests/fixtures/entities.json has no entry for {missing}: add one per entity"
    extra = sorted(set(ENTITY_FIXTURES) - set(ENTITIES))
    assert not extra, f"tests/fixtures/entities.json has entries for entities the registry lacks: {extra}"


def test_an_entity_without_an_entry_fails_saying_what_to_add() -> None:
    with pytest.raises(AssertionError, match=r"entities.json has no entry for 'gadgets': add one valid create payload"):
        fixture("gadgets")


@pytest.mark.parametrize("entity", list(ENTITIES))
@pytest.mark.parametrize("n", [0, 7, MAX_N])
def test_each_payload_is_a_valid_create_request_once_its_parents_are_filled_in(entity: str, n: int) -> None:
    spec = ENTITIES[entity]
    body = payload_of(entity, n)
    foreign = {fk.field for fk in spec.foreign_keys}
    assert not foreign & set(body), "leave foreign keys out: the factory and the JS client fill them in"
    parents = {field: str(uuid.uuid4()) for field in foreign}
    msgspec.json.decode(msgspec.json.encode({**body, **parents}), type=spec.create)


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_each_edit_names_one_field_the_update_request_takes(entity: str) -> None:
    field, value = edit_of(entity)
    update = msgspec.json.decode(msgspec.json.encode({"id": "x", field: value}), type=ENTITIES[entity].update)
    assert getattr(update, field) is not msgspec.UNSET


def test_records_differ_by_number() -> None:
    for entity in ENTITIES:
        if payload_of(entity, 1) != {}:
            assert payload_of(entity, 1) != payload_of(entity, 2), entity
