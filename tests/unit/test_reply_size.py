"""Error replies fit in max_payload whatever the input they echo (handlers/errors.py), and
header sizes are counted as nats-py sends them (service/model/limits.py)."""

from __future__ import annotations

from handlers.errors import MAX_DETAILS, MAX_TEXT, clip, fitted_error
from schema.common import ErrorBody, ErrorDetail, ErrorReply
from service.model.limits import PayloadLimit, header_bytes


def test_header_bytes_counts_the_block_nats_py_builds() -> None:
    headers = {"Nats-Msg-Id": "abc", "Nats-Expected-Stream": "EKKO_EVENTS"}
    block = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
    assert header_bytes(headers) == len(block)
    assert header_bytes({}) == header_bytes(None) == 0


def test_clip_keeps_short_text_and_cuts_long_text() -> None:
    assert clip("short") == "short"
    assert clip(None) is None
    cut = clip("a" * 1_000_000)
    assert cut is not None and len(cut) < MAX_TEXT + 100 and "998976 more characters cut" in cut


def test_an_error_reply_with_huge_echoes_fits_in_max_payload() -> None:
    details = [ErrorDetail(field="f" * 300_000, message="m" * 300_000) for _ in range(200)]
    reply = ErrorReply(ErrorBody("validation_error", "x" * 1_000_000, details))
    body, headers = fitted_error(400, reply, 1024 * 1024)
    assert len(body) + header_bytes(headers) < 200_000
    assert body.count(b'"field"') == MAX_DETAILS


def test_an_error_reply_that_cannot_fit_becomes_a_short_one() -> None:
    reply = ErrorReply(ErrorBody("not_found", "y" * 5_000, [ErrorDetail(message="z" * 5_000)]))
    body, headers = fitted_error(404, reply, 2_000)
    assert len(body) + header_bytes(headers) <= 2_000
    assert headers["Nats-Service-Error-Code"] == "404" and b"not_found" in body


def test_payload_limit_follows_its_source_and_defaults_to_nats_default() -> None:
    assert PayloadLimit().max_payload == 1024 * 1024
    value = [8 * 1024 * 1024]
    limit = PayloadLimit(lambda: value[0])
    assert limit.max_payload == 8 * 1024 * 1024
    value[0] = 1024  # a reconnect to a server with a smaller limit
    assert limit.record_budget == 0


def test_the_error_header_is_one_line_whatever_the_message_echoes() -> None:
    reply = ErrorReply(ErrorBody("validation_error", "field `a\r\nInjected: yes\rb` is unknown"))
    _, headers = fitted_error(400, reply, 1024 * 1024)
    assert "\r" not in headers["Nats-Service-Error"] and "\n" not in headers["Nats-Service-Error"]
