"""Workflows: ordered steps, owned by a user."""

from msgspec import Struct

from .common import CreateRequest, Id, JsonObject, LongText, Name, Record, update_struct


class WorkflowStep(Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str
    type: str
    config: JsonObject = {}
    next_steps: list[str] = []


class Workflow(Record, kw_only=True):
    name: str
    description: str | None = None
    enabled: bool = True
    steps: list[WorkflowStep] = []
    created_by: str | None = None


class WorkflowCreate(CreateRequest, kw_only=True):
    name: Name
    description: LongText | None = None
    enabled: bool = True
    steps: list[WorkflowStep] = []
    created_by: Id | None = None


WorkflowUpdate = update_struct("WorkflowUpdate", WorkflowCreate)
