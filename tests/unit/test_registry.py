"""service/model/registry.py checks the entity list when it is imported: parents come
before their children (creates, migrations, restores and deletes follow that order)."""

from __future__ import annotations

import dataclasses

import pytest

from service.model.registry import ENTITIES, ENTITY_ORDER, ForeignKey, RegistryError, registry_of


def test_the_registry_lists_every_parent_before_its_children() -> None:
    for position, name in enumerate(ENTITY_ORDER):
        for fk in ENTITIES[name].foreign_keys:
            assert ENTITY_ORDER.index(fk.parent) < position, (name, fk.parent)


def test_a_child_listed_before_its_parent_is_refused_naming_both() -> None:
    specs = (ENTITIES["users"], ENTITIES["alerts"], ENTITIES["wallets"])
    with pytest.raises(RegistryError, match=r"entity 'alerts' refers to parent 'wallets' .*list 'wallets' before"):
        registry_of(specs)


def test_a_parent_missing_from_the_list_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"entity 'workflows' refers to parent 'users' .*listed nowhere"):
        registry_of((ENTITIES["workflows"],))


def test_a_foreign_key_on_a_field_the_record_lacks_is_refused() -> None:
    broken = dataclasses.replace(ENTITIES["alerts"], foreign_keys=(ForeignKey("wallet", "wallets"),))
    with pytest.raises(RegistryError, match="foreign key field 'wallet' is not a record field"):
        registry_of((ENTITIES["wallets"], broken))


def test_two_foreign_keys_with_one_include_name_or_a_field_name_are_refused() -> None:
    twice = (ForeignKey("related_wallet_id", "wallets"), ForeignKey("id", "wallets"))
    broken = dataclasses.replace(ENTITIES["alerts"], foreign_keys=twice)
    with pytest.raises(RegistryError, match=r"include name 'wallet' .* give the ForeignKey an include_as"):
        registry_of((ENTITIES["wallets"], broken))
    named = (ForeignKey("related_wallet_id", "wallets"), ForeignKey("id", "wallets", include_as="same"))
    assert set(
        registry_of((ENTITIES["wallets"], dataclasses.replace(broken, foreign_keys=named)))["alerts"].includes
    ) == {
        "wallet",
        "same",
    }
    clash = (ForeignKey("related_wallet_id", "wallets", include_as="message"),)
    with pytest.raises(RegistryError, match="include name 'message'"):
        registry_of((ENTITIES["wallets"], dataclasses.replace(broken, foreign_keys=clash)))


def test_an_entity_listed_twice_is_refused() -> None:
    with pytest.raises(RegistryError, match="'users' is listed twice"):
        registry_of((ENTITIES["users"], ENTITIES["users"]))


def test_the_registry_in_its_own_order_is_accepted() -> None:
    assert list(registry_of(tuple(ENTITIES.values()))) == list(ENTITY_ORDER)
