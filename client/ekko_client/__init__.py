"""Typed asyncio client of the ekko data service.

Requests and replies are the service's own msgspec Structs (`ekko_client.schema`); error
replies raise one `EkkoError` subclass per status; change events decode into `ChangeEvent`.
"""

from .calls import Reports
from .client import Admin, EkkoClient
from .entities import Entity, Page, Users
from .errors import (
    Conflict,
    EkkoError,
    Forbidden,
    InsufficientStorage,
    InternalError,
    InvalidRequest,
    NoResponders,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
)
from .events import EventStream
from .listing import Filters
from .transport import RetryPolicy

__all__ = [
    "Admin",
    "Conflict",
    "EkkoClient",
    "EkkoError",
    "Entity",
    "EventStream",
    "Filters",
    "Forbidden",
    "InsufficientStorage",
    "InternalError",
    "InvalidRequest",
    "NoResponders",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Reports",
    "RequestTimeout",
    "RetryPolicy",
    "TooManyAttempts",
    "Unauthorized",
    "Unavailable",
    "Users",
]
