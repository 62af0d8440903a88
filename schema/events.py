"""Change events published on `ekko.events.<entity>.<created|updated|deleted>`.

One event per changed row. The events of one write (one caller's request: a create, an
update, a delete with its cascade) share `tx_id` and are numbered `tx_index` 0..`tx_count`-1
in the order they were made. Records are the public entity Structs (secrets never leave the
database). The headers below repeat the filterable fields, so a consumer can select events
without decoding the body."""

from datetime import datetime
from typing import Literal

from msgspec import Raw, Struct

Action = Literal["created", "updated", "deleted"]
# A JSON null held as Raw: msgspec cannot decode a `Raw | None` field (Raw takes no union), so
# record fields are `Raw` and hold this when there is no record. Consumers decode events too.
NO_RECORD = Raw(b"null")

# A request header a caller may send on a write; its value is copied onto the write's events.
CORRELATION_HEADER = "Ekko-Correlation-Id"
# Headers of every event (values are plain ASCII, one line).
ENTITY_HEADER = "Ekko-Entity"
ACTION_HEADER = "Ekko-Action"
ENTITY_ID_HEADER = "Ekko-Entity-Id"
VERSION_HEADER = "Ekko-Version"
TX_ID_HEADER = "Ekko-Tx-Id"
TX_INDEX_HEADER = "Ekko-Tx-Index"
TX_COUNT_HEADER = "Ekko-Tx-Count"
# CORRELATION_HEADER too, when the write's request carried one.


class ChangeEvent(Struct, kw_only=True):
    event_id: str
    entity: str
    action: Action
    id: str
    version: int  # the record's version after the change (on delete: the version deleted)
    occurred_at: datetime
    # The entity after the change, exactly as replies show it (already-encoded JSON); NO_RECORD
    # (null) on delete. Named `data` since the first events: `after` below reads it so.
    data: Raw = NO_RECORD
    # The entity before the change: on update and delete; NO_RECORD (null) on create, and with
    # before_omitted on an update whose two images together would not fit in one NATS message.
    before: Raw = NO_RECORD
    before_omitted: bool = False
    tx_id: str = ""
    tx_index: int = 0
    tx_count: int = 1
    correlation_id: str | None = None

    @property
    def after(self) -> Raw:
        """The entity after the change (the `data` field)."""
        return self.data
