"""One legacy KV value -> today's record: the pure part of the migration.

What the legacy API wrote is described in docs/legacy-format.md.
The mapping, in order:

- the JSON is decoded straight into a per-entity type built from the registry:
  today's field names *and* the legacy ones (`spec.legacy_names`), the
  constraints of the entity's create request (email pattern, name lengths, id
  patterns of foreign keys ...), JSON numbers read exactly as decimals;
- legacy names become today's (`hashed_password` -> `password_hash`, a secret
  column kept as it is so legacy users can still log in);
- a null or missing `created_at`/`updated_at` becomes the migration time, and
  the record remembers which ones were filled (`Mapped.filled`): integrity
  checks compare them with nothing, and `--force` keeps the stored ones;
- `version` is 1; a value ekko itself wrote (it carries a version) keeps it;
- decimals are rounded half-even to 8 places (floats carry noise digits),
  naive timestamps are UTC (the rules of `service.model.values.normalize`);
- the entity's own rules run as on create (`service.model.rules`: trimmed emails,
  upper-cased chain symbols, valid addresses).

Fields today's records do not have are dropped. Anything else that does not fit
raises `Rejected` with a reason for the report. The result is the row to insert
(`Mapped.row`); `Mapped.record` is the record it stands for.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import msgspec

from schema.common import Record
from service.model.columns import DEFAULT_DECIMAL, Kind, from_db, to_db
from service.model.errors import ValidationFailed
from service.model.registry import ENTITIES, EntitySpec
from service.model.rules import Rules, build_rules
from service.model.values import to_decimal, to_utc

FILLABLE = ("created_at", "updated_at")
_FILLED = {  # (created_at is null, updated_at is null) -> the fields the migration fills
    (False, False): frozenset(),
    (True, False): frozenset({"created_at"}),
    (False, True): frozenset({"updated_at"}),
    (True, True): frozenset(FILLABLE),
}
_RULES = build_rules(bcrypt_rounds=4)  # only the synchronous clean/check hooks are used


class Rejected(ValueError):
    """A KV value that cannot become a record. The message is the reason in the report."""


class Mapped(msgspec.Struct, frozen=True):
    """A legacy value as the row to stage: `to_db` values (decimals as exact text), secret
    columns included, `filled` timestamps null (the migration time replaces them on insert)."""

    entity: str
    row: dict[str, Any]
    filled: frozenset[str]
    now: datetime

    @property
    def record(self) -> Record:
        return _mapper(self.entity).record(self)

    @property
    def secrets(self) -> dict[str, Any]:
        return {name: self.row[name] for name in ENTITIES[self.entity].secret_columns}


def map_value(spec: EntitySpec, key: str, data: bytes, now: datetime) -> Mapped:
    """The row a legacy KV value becomes; `Rejected` (with the reason) when it cannot."""
    return _mapper(spec.name).map(key, data, now)


class _Mapper:
    """`map_value` for one entity, with the per-field work worked out once: the migration
    runs it for every record, so it goes straight from the decoded value to the row."""

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.decoder = msgspec.json.Decoder(_legacy_type(spec))
        kinds = {c.name: c.kind for c in spec.columns}
        self.decimals = tuple((c.name, c.decimal or DEFAULT_DECIMAL) for c in spec.columns if c.kind is Kind.DECIMAL)
        self.timestamps = tuple(n for n, k in kinds.items() if k is Kind.TIMESTAMP)
        self.json = tuple(c for c in spec.columns if c.kind is Kind.JSON)
        self.fields = tuple(kinds)
        self.converted = tuple(c for c in spec.columns if c.kind in (Kind.JSON, Kind.TIMESTAMP, Kind.DECIMAL))
        required = {f.name for f in msgspec.structs.fields(spec.record) if f.required}
        self.required_renamed = tuple(new for new in spec.legacy_names.values() if new in required)
        self.rules = _RULES.get(spec.name, Rules())
        self.cleans = type(self.rules).clean is not Rules.clean
        self.checks = type(self.rules).check is not Rules.check

    def record(self, mapped: Mapped) -> Record:
        values = {name: mapped.row[name] for name in self.fields}
        for column in self.converted:
            values[column.name] = from_db(column, values[column.name])
        values.update(dict.fromkeys(mapped.filled, mapped.now))
        return self.spec.record(**values)

    def map(self, key: str, data: bytes, now: datetime) -> Mapped:
        try:
            row = msgspec.structs.asdict(self.decoder.decode(data))
        except msgspec.ValidationError as exc:
            raise Rejected(f"invalid: {exc}") from None
        except msgspec.DecodeError as exc:
            raise Rejected(f"not valid JSON: {exc}") from None
        for old, new in self.spec.legacy_names.items():
            legacy_value = row.pop(old)
            if row[new] is None:
                row[new] = legacy_value
        if (row_id := row["id"]) is None:
            row["id"] = key
        elif row_id != key:
            raise Rejected(f"id {row_id!r} differs from its key")
        if (version := row["version"]) is None:
            row["version"] = 1
        elif version < 1:
            raise Rejected(f"invalid: version must be at least 1, got {version}")
        for name in self.required_renamed:
            if row[name] is None:
                raise Rejected(f"invalid: missing required field `{name}`")
        filled = _FILLED[row["created_at"] is None, row["updated_at"] is None]
        try:
            if self.cleans:
                row = self.rules.clean(row)
            # The rules of service.model.values.normalize (exact decimals rounded to 8 places, naive
            # timestamps are UTC), applied only to the fields they concern, then to_db's forms.
            for name, decimal in self.decimals:
                if (value := row[name]) is not None:
                    # As text: exact, and ~5x cheaper to encode to NDJSON than a Decimal subclass.
                    row[name] = format(to_decimal(name, value, decimal, round_excess=True), "f")
            for name in self.timestamps:
                if (value := row[name]) is not None and value.tzinfo is not None:
                    row[name] = to_utc(name, value).replace(tzinfo=None)  # past year 9999: a failure, not a crash
            for column in self.json:
                row[column.name] = to_db(column, row[column.name])
            mapped = Mapped(self.spec.name, row, filled, now)
            self.rules.check_secrets({name: row[name] for name in self.spec.secret_columns})
            if self.checks:
                self.rules.check(mapped.record)
        except ValidationFailed as exc:
            raise Rejected(f"invalid: {exc}") from None
        return mapped


# -- the per-entity decoding type --------------------------------------------
_BASE = {"id", "created_at", "updated_at", "version"}


@functools.cache
def _mapper(entity: str) -> _Mapper:
    return _Mapper(ENTITIES[entity])


def _legacy_type(spec: EntitySpec) -> type[msgspec.Struct]:
    """A Struct accepting what the legacy API (or ekko itself) wrote for this entity."""
    create = {f.name: f for f in msgspec.structs.fields(spec.create)}
    renamed = set(spec.legacy_names.values())
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [  # (name, type[, default])
        ("id", str | None, None),
        ("created_at", datetime | None, None),
        ("updated_at", datetime | None, None),
        ("version", int | None, None),
    ]
    types: dict[str, Any] = {}
    for f in msgspec.structs.fields(spec.record):
        if f.name in _BASE:
            continue
        types[f.name] = kind = _create_type(create.get(f.name)) or f.type
        if f.name in renamed:  # either name may be present: both optional, coalesced after decoding
            fields.append((f.name, kind | None, None))
        elif f.required:
            fields.append((f.name, kind))
        else:
            default = msgspec.field(default_factory=f.default_factory) if f.default is msgspec.NODEFAULT else f.default
            fields.append((f.name, kind, default))
    for name in spec.secret_columns:
        types[name] = str
        fields.append((name, str | None, None))
    for old, new in spec.legacy_names.items():
        fields.append((old, types[new] | None, None))
    return msgspec.defstruct(f"Legacy{spec.record.__name__}", fields, kw_only=True)


def _create_type(field: msgspec.structs.FieldInfo | None) -> Any:
    """The create request's (constrained) type of a field, unless it is a create-only optional."""
    if field is None or field.default is msgspec.UNSET:
        return None
    return field.type
