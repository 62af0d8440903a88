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
    4: "a4b8bfffb108d0bb2acb33eca5d53c585876c313511ab0e14dd411486e79487e",
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
