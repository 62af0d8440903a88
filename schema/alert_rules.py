"""Alert rules: a condition and an action, owned by a user."""

from .common import CreateRequest, Id, JsonObject, LongText, Name, Record, update_struct


class AlertRule(Record, kw_only=True):
    name: str
    description: str | None = None
    condition: JsonObject
    action: JsonObject
    enabled: bool = True
    created_by: str | None = None


class AlertRuleCreate(CreateRequest, kw_only=True):
    name: Name
    condition: JsonObject
    action: JsonObject
    description: LongText | None = None
    enabled: bool = True
    created_by: Id | None = None


AlertRuleUpdate = update_struct("AlertRuleUpdate", AlertRuleCreate)
