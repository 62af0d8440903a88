"""The entity registry: everything CRUD, listing, KV sync, migration, backup and
integrity need to know about an entity, in one place.

Adding an entity = a schema module + one `EntitySpec` in `ENTITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from schema import agents, alert_rules, alerts, users, wallet_balances, wallets, workflow_executions, workflows
from service.model.columns import Column, columns_of


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


@dataclass(frozen=True)
class EntitySpec:
    name: str  # table, KV bucket and subject token
    record: type[msgspec.Struct]
    create: type[msgspec.Struct]
    update: type[msgspec.Struct]
    foreign_keys: tuple[ForeignKey, ...] = ()
    unique: tuple[UniqueKey, ...] = ()
    # Sorting is limited to NOT NULL columns so keyset cursors need no NULL logic.
    sortable: tuple[str, ...] = ("created_at", "updated_at", "version")
    # Columns stored in DuckDB but never part of the record (never replied, never synced).
    secret_columns: tuple[str, ...] = ()
    # Legacy KV field name -> today's field name.
    legacy_names: dict[str, str] = field(default_factory=dict)
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
    def sort_fields(self) -> frozenset[str]:
        return frozenset(("id", *self.sortable))


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "users",
            users.User,
            users.UserCreate,
            users.UserUpdate,
            unique=(UniqueKey(("email",), "a user with this email already exists"),),
            sortable=("created_at", "updated_at", "version", "email", "role", "is_active"),
            secret_columns=("password_hash",),
            legacy_names={"hashed_password": "password_hash"},
            privileged={"role": "user"},
        ),
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
}

# Parents before children: the order creates, migrations and restores use.
ENTITY_ORDER: tuple[str, ...] = tuple(ENTITIES)


def children_of(parent: str) -> list[tuple[EntitySpec, ForeignKey]]:
    """Every (entity, foreign key) that points at `parent`."""
    return [(spec, fk) for spec in ENTITIES.values() for fk in spec.foreign_keys if fk.parent == parent]
