"""Agents: automated actors owned by a user; max_budget is new (legacy agents have none)."""

from datetime import datetime

from .common import CreateRequest, Id, JsonObject, Money, Name, Record, ShortText, update_struct


class Agent(Record, kw_only=True):
    name: str
    type: str
    config: JsonObject = {}
    status: str = "inactive"
    last_run: datetime | None = None
    created_by: str | None = None
    max_budget: Money | None = None


class AgentCreate(CreateRequest, kw_only=True):
    name: Name
    type: ShortText
    config: JsonObject = {}
    status: ShortText = "inactive"
    last_run: datetime | None = None
    created_by: Id | None = None
    max_budget: Money | None = None


AgentUpdate = update_struct("AgentUpdate", AgentCreate)
