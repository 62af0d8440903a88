"""Users. The password hash lives only in DuckDB: no Struct here carries it."""

from typing import Annotated

from msgspec import Meta, Struct

from .common import CreateRequest, Name, Record, ShortText, update_struct

Email = Annotated[str, Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
# bcrypt only reads the first 72 bytes; a longer password would be silently truncated.
Password = Annotated[str, Meta(min_length=8, max_length=72)]


class User(Record, kw_only=True):
    email: str
    full_name: str | None = None
    role: str = "user"
    is_active: bool = True


class UserCreate(CreateRequest, kw_only=True):
    email: Email
    password: Password
    full_name: Name | None = None
    role: ShortText = "user"
    is_active: bool = True


UserUpdate = update_struct("UserUpdate", UserCreate)


class AuthenticateRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]
    password: Annotated[str, Meta(max_length=1024)]
