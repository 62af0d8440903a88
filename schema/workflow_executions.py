"""Runs of a workflow. Legacy start_time/end_time/error are started_at/completed_at/error_message."""

from datetime import datetime
from typing import Any

from .common import CreateRequest, Id, LongText, Record, ShortText, update_struct


class WorkflowExecution(Record, kw_only=True):
    workflow_id: str
    status: str = "pending"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    error_message: str | None = None


class WorkflowExecutionCreate(CreateRequest, kw_only=True):
    workflow_id: Id
    status: ShortText = "pending"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None
    error_message: LongText | None = None


WorkflowExecutionUpdate = update_struct("WorkflowExecutionUpdate", WorkflowExecutionCreate)
