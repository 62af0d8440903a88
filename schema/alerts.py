"""Alerts raised for (optionally) a wallet."""

from .common import CreateRequest, Id, JsonObject, LongText, Record, ShortText, update_struct


class Alert(Record, kw_only=True):
    type: str
    message: str
    time: str | None = None
    status: str = "active"
    icon: str | None = None
    priority: str = "medium"
    related_wallet_id: str | None = None
    query: str | None = None
    job_spec: JsonObject | None = None
    notifications_enabled: bool = True


class AlertCreate(CreateRequest, kw_only=True):
    type: ShortText
    message: LongText
    # A free string in the legacy API (e.g. "2024-01-01 10:00" or "daily").
    time: ShortText | None = None
    status: ShortText = "active"
    icon: ShortText | None = None
    priority: ShortText = "medium"
    related_wallet_id: Id | None = None
    query: LongText | None = None
    job_spec: JsonObject | None = None
    notifications_enabled: bool = True


AlertUpdate = update_struct("AlertUpdate", AlertCreate)
