"""Change events published on `ekko.events.<entity>.<created|updated|deleted>`."""

from datetime import datetime
from typing import Literal

from msgspec import Raw, Struct

Action = Literal["created", "updated", "deleted"]
# A JSON null held as Raw: msgspec cannot decode a `Raw | None` field (Raw takes no union), so
# record fields are `Raw` and hold this when there is no record. Consumers decode events too.
NO_RECORD = Raw(b"null")


class ChangeEvent(Struct, kw_only=True):
    event_id: str
    entity: str
    action: Action
    id: str
    version: int
    occurred_at: datetime
    # The entity exactly as replies show it (already-encoded JSON); NO_RECORD (null) on delete.
    data: Raw = NO_RECORD
