"""Change events published on `ekko.events.<entity>.<created|updated|deleted>`."""

from datetime import datetime
from typing import Literal

from msgspec import Raw, Struct

Action = Literal["created", "updated", "deleted"]


class ChangeEvent(Struct, kw_only=True):
    event_id: str
    entity: str
    action: Action
    id: str
    version: int
    occurred_at: datetime
    # The entity exactly as replies show it (already-encoded JSON); null on delete.
    data: Raw | None = None
