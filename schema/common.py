"""Shared field aliases and the request/reply shapes every entity uses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "UNSET",
    "Amount",
    "CreateRequest",
    "DeleteReply",
    "DeleteRequest",
    "ErrorBody",
    "ErrorDetail",
    "ErrorReply",
    "Fiat",
    "FixedDecimal",
    "GetRequest",
    "Id",
    "JsonObject",
    "ListReply",
    "ListRequest",
    "LongText",
    "Money",
    "Name",
    "Record",
    "ShortText",
    "UnsetType",
    "UpdateRequest",
    "decimal_type",
]

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Id = Annotated[str, Meta(pattern=UUID_PATTERN, description="UUID string")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
ShortText = Annotated[str, Meta(max_length=64)]
LongText = Annotated[str, Meta(max_length=10_000)]


def decimal_type(precision: int, scale: int) -> Any:
    """An exact decimal field stored as DECIMAL(precision, scale): JSON strings in replies,
    numbers or strings on input. Scale and magnitude are checked by service.model.values,
    the column type is derived by service.model.columns (both read Meta.extra)."""
    return Annotated[
        Decimal,
        Meta(
            extra={"decimal": (precision, scale)},
            extra_json_schema={
                "description": f"exact decimal, at most {scale} places, {precision - scale} digits before the point"
            },
        ),
    ]


Money = decimal_type(24, 8)  # prices of things: budgets
# On-chain amounts and token prices: 18 decimals (wei), 20 integer digits.
Amount = decimal_type(38, 18)
# Fiat values: 8 decimals like Money, with the integer digits an Amount times a price needs.
Fiat = decimal_type(38, 8)


class FixedDecimal(Decimal):
    """A Decimal written as fixed-point text: "0.00000000", never str()'s "0E-8".

    msgspec writes a plain Decimal with str(), which switches to exponent
    notation below 1e-6; a subclass goes through the encoder's enc_hook instead.
    Every stored decimal is made one (service.model.values, service.model.columns)."""

    __slots__ = ()


JsonObject = dict[str, Any]


class Record(Struct, kw_only=True):
    """Fields every stored entity has. Replies carry exactly these plus the entity's own."""

    id: str
    created_at: datetime
    updated_at: datetime
    version: int


class CreateRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every `<entity>.create` body: `id` is generated when absent."""

    id: Id | UnsetType = UNSET


class UpdateRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every `<entity>.update` body: only the fields sent are changed."""

    id: str
    expected_version: int | UnsetType = UNSET


class GetRequest(Struct, forbid_unknown_fields=True):
    id: str


class DeleteRequest(Struct, forbid_unknown_fields=True):
    id: str
    cascade: bool = False
    expected_version: int | UnsetType = UNSET


class DeleteReply(Struct):
    id: str
    deleted: bool = True


class ListRequest(Struct, forbid_unknown_fields=True):
    """`ekko.<entity>.list`: filters, sort, page size and position; what each item holds
    (`select`, `include`) and whether to count the matching rows (`count`)."""

    filters: dict[str, Any] = {}
    sort: list[str] = []
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50
    cursor: str | None = None
    count: bool = False
    include: list[str] = []
    select: Annotated[list[str], Meta(min_length=1)] | None = None  # None: every field


class ListReply(Struct):
    """A page; `total` (rows matching the filters, whatever the cursor and limit) only when
    the request asked for `count`."""

    items: list[Any]
    next_cursor: str | None = None
    total: int | UnsetType = UNSET


class ErrorDetail(Struct, omit_defaults=True):
    field: str | None = None
    message: str = ""


class ErrorBody(Struct):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorReply(Struct):
    error: ErrorBody


def encode(value: Any) -> bytes:
    """The one JSON encoder for replies, KV values and events."""
    return _ENCODER.encode(value)


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(decimal_format="string", enc_hook=_enc_hook)


def update_struct(name: str, create: type[Struct]) -> type[UpdateRequest]:
    """Build `<Entity>Update` from `<Entity>Create`: every field optional, UNSET when not sent.

    Nullable fields stay nullable (sending null clears them); required fields
    become `T | UNSET`, so null for them is a validation error.
    """
    fields = [(f.name, f.type | UnsetType, UNSET) for f in msgspec.structs.fields(create) if f.name != "id"]
    update = msgspec.defstruct(
        name,
        fields,
        bases=(UpdateRequest,),
        kw_only=True,
        forbid_unknown_fields=True,
        module=create.__module__,
    )
    # defstruct is typed as returning type[Struct]; with these bases it is an UpdateRequest.
    assert issubclass(update, UpdateRequest)
    return update
