"""Error replies become exceptions by their Nats-Service-Error-Code, whatever the status."""

from __future__ import annotations

import pytest

from ekko_client import Conflict, EkkoError, InvalidRequest, NotFound, PayloadTooLarge
from ekko_client.errors import error_from_reply

BODY = b'{"error":{"code":"conflict","message":"stale","details":[{"field":"expected_version","message":"is 2"}]}}'


def test_a_success_reply_is_no_error() -> None:
    assert error_from_reply("ekko.wallets.get", {}, b'{"id": "x"}') is None


@pytest.mark.parametrize(
    ("status", "cls"), [(400, InvalidRequest), (404, NotFound), (409, Conflict), (413, PayloadTooLarge)]
)
def test_each_status_has_its_class(status: int, cls: type[EkkoError]) -> None:
    error = error_from_reply("ekko.x", {"Nats-Service-Error-Code": str(status)}, BODY)
    assert type(error) is cls
    assert (error.status, error.code, error.message, error.fields) == (
        status,
        "conflict",
        "stale",
        ["expected_version"],
    )


def test_an_unknown_status_is_the_base_class_with_its_code() -> None:
    error = error_from_reply("ekko.x", {"Nats-Service-Error-Code": "418"}, BODY)
    assert type(error) is EkkoError and error.status == 418 and error.code == "conflict"


def test_a_body_that_is_not_ekkos_keeps_the_header_message() -> None:
    headers = {"Nats-Service-Error-Code": "503", "Nats-Service-Error": "down for maintenance"}
    error = error_from_reply("svc.x", headers, b"not json")
    assert error is not None and (error.status, error.message) == (503, "down for maintenance")
