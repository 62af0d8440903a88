"""The entity registry: everything CRUD, listing, KV sync, migration, backup and
integrity need to know about an entity, in one place.

Adding an entity: docs/add-an-entity.md. Specs are listed parents first (creates,
migrations, restores and deletes follow this order); `registry_of` refuses a list
that breaks that, at import, so a wrong order cannot surface later as a KeyError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Generic

# typing.TypeVar takes `default` only from Python 3.13.
from typing_extensions import TypeVar

from schema import agents, alert_rules, alerts, users, wallet_balances, wallets, workflow_executions, workflows
from schema.common import CreateRequest, Record, UpdateRequest
from service.model.columns import Column, Kind, columns_of


@dataclass(frozen=True)
class ForeignKey:
    """`field` holds the id of a row of `parent`; null is allowed when the field is nullable."""

    field: str
    parent: str


@dataclass(frozen=True)
class UniqueKey:
    """These fields are unique together, text compared case-insensitively."""

    fields: tuple[str, ...]
    message: str


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
    # Sorting is limited to NOT NULL columns so keyset cursors need no NULL logic.
    sortable: tuple[str, ...] = ("created_at", "updated_at", "version")
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
        return frozenset(("id", *self.sortable))


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
    sortable=("created_at", "updated_at", "version", "email", "role", "is_active"),
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
            sortable=("created_at", "updated_at", "version", "blockchain_symbol", "address", "balance", "status"),
        ),
        EntitySpec(
            "alerts",
            alerts.Alert,
            alerts.AlertCreate,
            alerts.AlertUpdate,
            foreign_keys=(ForeignKey("related_wallet_id", "wallets"),),
            sortable=("created_at", "updated_at", "version", "type", "status", "priority"),
        ),
        EntitySpec(
            "wallet_balances",
            wallet_balances.WalletBalance,
            wallet_balances.WalletBalanceCreate,
            wallet_balances.WalletBalanceUpdate,
            foreign_keys=(ForeignKey("wallet_id", "wallets"),),
            sortable=("created_at", "updated_at", "version", "timestamp", "balance", "wallet_id"),
        ),
        EntitySpec(
            "alert_rules",
            alert_rules.AlertRule,
            alert_rules.AlertRuleCreate,
            alert_rules.AlertRuleUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
            sortable=("created_at", "updated_at", "version", "name", "enabled"),
        ),
        EntitySpec(
            "workflows",
            workflows.Workflow,
            workflows.WorkflowCreate,
            workflows.WorkflowUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
            sortable=("created_at", "updated_at", "version", "name", "enabled"),
        ),
        EntitySpec(
            "workflow_executions",
            workflow_executions.WorkflowExecution,
            workflow_executions.WorkflowExecutionCreate,
            workflow_executions.WorkflowExecutionUpdate,
            foreign_keys=(ForeignKey("workflow_id", "workflows"),),
            sortable=("created_at", "updated_at", "version", "status", "workflow_id"),
            legacy_names={"start_time": "started_at", "end_time": "completed_at", "error": "error_message"},
        ),
        EntitySpec(
            "agents",
            agents.Agent,
            agents.AgentCreate,
            agents.AgentUpdate,
            foreign_keys=(ForeignKey("created_by", "users"),),
            sortable=("created_at", "updated_at", "version", "name", "type", "status"),
        ),
    )
)

# Parents before children: the order creates, migrations and restores use.
ENTITY_ORDER: tuple[str, ...] = tuple(ENTITIES)


def children_of(parent: str) -> list[tuple[EntitySpec, ForeignKey]]:
    """Every (entity, foreign key) that points at `parent`."""
    return [(spec, fk) for spec in ENTITIES.values() for fk in spec.foreign_keys if fk.parent == parent]
