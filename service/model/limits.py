"""How large a message may be: NATS's max_payload, read from the live server.

nats-server closes a connection that publishes more than max_payload (body plus
headers), and nats-py checks only the body. Every size check goes through here,
so a write that could not be relayed is refused before it commits, and no reply
or relayed message ever goes over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from service.model.errors import Detail, Overloaded, PayloadTooLarge

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default, used until a server tells us its own
# Bytes kept free beside a stored record for what wraps it on the way out: the event envelope
# (event id, entity, action, version, time, transaction: ~330 bytes besides the ids) and its
# headers (~420 bytes besides the ids), or the reply headers (correlation_id, content-type, ~120).
# An update's event carries two records; it drops the one before when both do not fit.
ENVELOPE_RESERVE = 1024


def header_bytes(headers: Mapping[str, str] | None) -> int:
    """Size of the NATS header block nats-py sends for these headers (0 when none)."""
    if not headers:
        return 0
    return len("NATS/1.0\r\n\r\n") + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def too_large(what: str, size: int, limit: int, field: str | None = None) -> PayloadTooLarge:
    message = f"{what} would be {size} bytes; NATS carries at most {limit} bytes (max_payload)"
    return PayloadTooLarge(message, [Detail(field, message)])


class PayloadLimit:
    """The live max_payload: `bind` it to the connection once connected (it may change on a
    reconnect to another server); the nats-server default until then."""

    def __init__(self, source: Callable[[], int] | None = None) -> None:
        self._source = source

    def bind(self, source: Callable[[], int]) -> None:
        self._source = source

    @property
    def max_payload(self) -> int:
        value = self._source() if self._source is not None else 0
        return value if value > 0 else DEFAULT_MAX_PAYLOAD

    @property
    def record_budget(self) -> int:
        """The largest encoded record that fits in a KV value, an event and a reply."""
        return self.max_payload - ENVELOPE_RESERVE

    def check_record(self, entity: str, data: bytes) -> None:
        """Refuse a record that could not be relayed (KV value, event) or returned whole."""
        if len(data) > self.record_budget:
            raise too_large(f"the {entity} record", len(data), self.record_budget)


# A request at least this large (body and headers) counts against the in-flight budget.
# Smaller ones never wait or fail on it; every request slot of every subject full of them
# (~6,600 with the default settings) holds at most ~100 MiB.
LARGE_BODY = 16 * 1024


class BodyBudget:
    """Bytes of large requests being handled at once (event loop only).

    A request is held from its arrival until its handler returns, and while it is handled its
    decoded copy costs a few times its size again: hundreds of max_payload writes at once
    would take gigabytes. Past the limit a large request is refused at once with 503
    (`Overloaded`), before it is decoded, and changes nothing; one alone is always taken,
    whatever its size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.refused = 0

    def take(self, size: int) -> None:
        """Count a body of `size` bytes in, or raise Overloaded; give it back with `give_back`."""
        if self.in_use and self.in_use + size > self.limit:
            self.refused += 1
            raise Overloaded(
                f"{self.in_use} bytes of large requests are being handled (at most {self.limit}); "
                f"this one of {size} bytes was not taken: retry shortly"
            )
        self.in_use += size

    def give_back(self, size: int) -> None:
        self.in_use -= size
