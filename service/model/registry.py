"""The entity registry: everything CRUD, listing, KV sync, migration, backup and
integrity need to know about an entity, in one place.

Adding an entity: docs/add-an-entity.md. Specs are listed parents first (creates,
migrations, restores and deletes follow this order); `registry_of` refuses a list
that breaks that, at import, so a wrong order cannot surface later as a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic

# typing.TypeVar takes `default` only from Python 3.13.
from typing_extensions import TypeVar

from schema import agents, alert_rules, alerts, users, wallet_balances, wallets, workflow_executions, workflows
from schema.common import CreateRequest, Record, UpdateRequest
from service.model.columns import Column, Kind, columns_of


@dataclass(frozen=True)
class ForeignKey:
    """`field` holds the id of a row of `parent`; null is allowed when the field is nullable.

    A list request's `include` embeds the parent under `include_as`: by default the parent's
    name without its final "s" (wallets -> wallet)."""

    field: str
    parent: str
    include_as: str = ""

    @property
    def include_name(self) -> str:
        return self.include_as or self.parent.removesuffix("s")


@dataclass(frozen=True)
class UniqueKey:
    """These fields are unique together, text compared case-insensitively."""

    fields: tuple[str, ...]
    message: str

    @property
    def column(self) -> str:
        """The stored column holding the key's normalized form, under a unique index
        (service/store/tables.py): never part of the record, like secret columns."""
        return "unique_" + "_".join(self.fields)

    def normalized(self, values: Mapping[str, Any]) -> str:
        """The key as stored: each field's text lower-cased; several fields joined with a
        length prefix on all but the last, so no two keys share a form ("ab"+"c" vs "a"+"bc")."""
        parts = [str(values[name]).lower() for name in self.fields]
        return "".join(f"{len(part)}:{part}" for part in parts[:-1]) + parts[-1]


# An entity's own Structs. Covariant (a spec is read-only), so EntitySpec[User, ...] is an
# EntitySpec; the defaults make a bare `EntitySpec` mean "any entity" in generic code.
RecordT = TypeVar("RecordT", bound=Record, covariant=True, default=Record)
CreateT = TypeVar("CreateT", bound=CreateRequest, covariant=True, default=CreateRequest)
UpdateT = TypeVar("UpdateT", bound=UpdateRequest, covariant=True, default=UpdateRequest)


@dataclass(frozen=True)
class EntitySpec(Generic[RecordT, CreateT, UpdateT]):
    name: str  # table, KV bucket and subject token
    record: type[RecordT]
    create: type[CreateT]
    update: type[UpdateT]
    foreign_keys: tuple[ForeignKey, ...] = ()
    unique: tuple[UniqueKey, ...] = ()
    # Columns stored in DuckDB but never part of the record (never replied, never synced).
    secret_columns: tuple[str, ...] = ()
    # Legacy KV field name -> today's field name.
    legacy_names: dict[str, str] = field(default_factory=dict)
    # Indexes beyond the ones derived from unique and foreign keys (service/store/tables.py).
    indexes: tuple[tuple[str, ...], ...] = ()
    # Fields that grant rights -> their default. Only the admin subjects
    # (ekko.admin.<entity>.create|update) may set another value or change one (403 otherwise).
    privileged: dict[str, object] = field(default_factory=dict)

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        return columns_of(self.record)

    @cached_property
    def column_map(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @cached_property
    def filterable(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.scalar)

    @cached_property
    def id_fields(self) -> frozenset[str]:
        """The row's own id and every foreign key: canonical lower-case ids (service.model.values)."""
        return frozenset(("id", *(fk.field for fk in self.foreign_keys)))

    @cached_property
    def decimal_fields(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind is Kind.DECIMAL)

    @cached_property
    def sort_fields(self) -> frozenset[str]:
        """Any scalar field; keyset cursors handle NULLs (service.store.repository.SortKey)."""
        return self.filterable

    @cached_property
    def includes(self) -> dict[str, ForeignKey]:
        """What a list request may embed: include name -> the foreign key that finds the parent."""
        return {fk.include_name: fk for fk in self.foreign_keys}


class RegistryError(Exception):
    """The entity list contradicts itself; raised while importing this module."""


def registry_of(specs: tuple[EntitySpec, ...]) -> dict[str, EntitySpec]:
    """name -> spec, after checking every parent is listed before its children."""
    seen: dict[str, EntitySpec] = {}
    for spec in specs:
        if spec.name in seen:
            raise RegistryError(f"entity {spec.name!r} is listed twice")
        for fk in spec.foreign_keys:
            if fk.field not in spec.column_map:
                raise RegistryError(f"entity {spec.name!r}: foreign key field {fk.field!r} is not a record field")
            if (
                fk.include_name in spec.column_map
                or [k.include_name for k in spec.foreign_keys].count(fk.include_name) > 1
            ):
                raise RegistryError(
                    f"entity {spec.name!r}: include name {fk.include_name!r} ({fk.field}) is taken by a field or"
                    " another foreign key: give the ForeignKey an include_as"
                )
            if fk.parent in seen or fk.parent == spec.name:
                continue
            where = "later" if any(s.name == fk.parent for s in specs) else "nowhere"
            raise RegistryError(
                f"entity {spec.name!r} refers to parent {fk.parent!r} ({fk.field}), which is listed {where}:"
                f" list {fk.parent!r} before {spec.name!r}"
            )
        seen[spec.name] = spec
    return seen


# Named on its own because login reads users' own fields (is_active).
USERS = EntitySpec(
    "users",
    users.User,
    users.UserCreate,
    users.UserUpdate,
    unique=(UniqueKey(("email",), "a user with this email already exists"),),
    secret_columns=("password_hash",),
    legacy_names={"hashed_password": "password_hash"},
    # role grants rights; is_active grants the right to log in at all (a client must not
    # reactivate an account an admin switched off).
    privileged={"role": "user", "is_active": True},
)

ENTITIES: dict[str, EntitySpec] = registry_of(
    (
        USERS,
        EntitySpec(
            "wallets",
            wallets.Wallet,
            wallets.WalletCreate,
            wallets.WalletUpdate,
            unique=(UniqueKey(("blockchain_symbol", "address"), "this address is already registered on this chain"),),
        ),
        EntitySpec(
            "alerts",
            alerts.Alert,
            alerts.AlertCreate,
            alerts.AlertUpdate,
            foreign_keys=(ForeignKey("related_wallet_id", "wallets"),),
        ),
        EntitySpec(
            "wallet_balances",
            wallet_balances.WalletBalance,
            wallet_balances.WalletBalanceCreate,
            wallet_balances.WalletBalanceUpdate,
            foreign_keys=(ForeignKey("wallet_id", "wallets"),),
        ),
        EntitySpec(
            "alert_rules",
            alert_rules.AlertRule,
            alert_rules.AlertRuleCreate,
            alert_rules.AlertRuleUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
        ),
        EntitySpec(
            "workflows",
            workflows.Workflow,
            workflows.WorkflowCreate,
            workflows.WorkflowUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
        ),
        EntitySpec(
            "workflow_executions",
            workflow_executions.WorkflowExecution,
            workflow_executions.WorkflowExecutionCreate,
            workflow_executions.WorkflowExecutionUpdate,
            foreign_keys=(ForeignKey("workflow_id", "workflows"),),
            legacy_names={"start_time": "started_at", "end_time": "completed_at", "error": "error_message"},
        ),
        EntitySpec(
            "agents",
            agents.Agent,
            agents.AgentCreate,
            agents.AgentUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
        ),
    )
)

# Parents before children: the order creates, migrations and restores use.
ENTITY_ORDER: tuple[str, ...] = tuple(ENTITIES)


def children_of(parent: str) -> list[tuple[EntitySpec, ForeignKey]]:
    """Every (entity, foreign key) that points at `parent`."""
    return [(spec, fk) for spec in ENTITIES.values() for fk in spec.foreign_keys if fk.parent == parent]
