"""msgspec Structs for every payload ekko accepts or replies with.

One module per entity (record, create, update), plus `common` (shared aliases
and request/reply shapes) and `events` (the change events on `ekko.events.>`).
"""
