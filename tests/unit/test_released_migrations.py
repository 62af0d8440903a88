"""A released migration has run on databases we cannot reach: editing its SQL changes
nothing there and makes fresh databases differ from old ones. Every test starts from an
empty database, so nothing else would notice; this freezes the text of each one."""

from __future__ import annotations

import hashlib

import pytest

from service.store.ddl import MIGRATIONS

# version -> sha256 of its SQL. A migration is released when it is merged to main: add its
# hash here in the same change (the last test below fails until you do).
RELEASED = {
    1: "35a6643dfa4bdbd3332ce72efaf696c5a84e3d01c1509b775f27eb0d8f3bdc35",
    2: "711dd416349890f34f5d3debc07e4a51d77103509e0c4bb5191612c0b56c2c8e",
    3: "e7650be76dd798c1d5799530df7a2c614dbc8d4ae45e32b348d0c1be74e39d61",
    4: "d35835c894630edba98c804cad9b69983c88c0cca1669f6866370481bba1c970",
    5: "982113a56f0a9ba1672d0f35c0762f61290adcba12474336c78c32efc9af6646",
    6: "7d6aeea376273cefb43b0a61f518ea838cacc9be786c801ad38669cea4e997bd",
    7: "a2f174623c49caa8e07d2d8cd4fd1abf41a0102c966cee5dba0621c69bf6c59c",
    8: "0c5f1469623065866c7a6c3623dc6133f8d400ba713f52a1f2f05ad523474e7a",
    9: "375ea6887564c0410a3db877811d63ab360abb0114286fdab16831b2560be375",
    10: "dbafd052bd31915e4e1ab1aabcff7225e1fe5e72427470466b14a0df676156b5",
}


def digest(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


@pytest.mark.parametrize("version", list(RELEASED))
def test_a_released_migration_is_never_edited(version: int) -> None:
    found = {number: sql for number, _, sql in MIGRATIONS}
    assert version in found, f"released migration {version} was removed from MIGRATIONS; migrations are forward-only"
    assert digest(found[version]) == RELEASED[version], (
        f"migration {version} was released and has run on existing databases; its SQL must not change:"
        " revert it and add a new migration instead (append to MIGRATIONS in service/store/ddl.py)"
    )


def test_migrations_are_numbered_one_by_one_in_order() -> None:
    numbers = [number for number, _, _ in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_every_migration_is_frozen_once_merged() -> None:
    unfrozen = {number: digest(sql) for number, _, sql in MIGRATIONS if number not in RELEASED}
    assert unfrozen == {}, f"add these to RELEASED in this file when the migration is merged: {unfrozen}"
