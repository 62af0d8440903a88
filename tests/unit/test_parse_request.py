"""handlers.requests.parse_request: FastStream's correlation id comes from the id pool, unless
the request brought one."""

from __future__ import annotations

import re
from typing import Any

from nats.aio.msg import Msg

from handlers.requests import parse_request

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


async def _as_parsed(msg: Msg) -> Any:
    return msg.headers


async def test_a_request_without_headers_gets_a_fresh_correlation_id() -> None:
    first = await parse_request(Msg(None, subject="ekko.wallets.get", data=b"{}"), _as_parsed)  # type: ignore[arg-type]
    second = await parse_request(Msg(None, subject="ekko.wallets.get", data=b"{}"), _as_parsed)  # type: ignore[arg-type]
    assert UUID4.fullmatch(first["correlation_id"]) and UUID4.fullmatch(second["correlation_id"])
    assert first["correlation_id"] != second["correlation_id"]


async def test_other_headers_are_kept_and_a_sent_correlation_id_wins() -> None:
    headers = await parse_request(Msg(None, data=b"{}", headers={"Ekko-Correlation-Id": "abc"}), _as_parsed)  # type: ignore[arg-type]
    assert headers["Ekko-Correlation-Id"] == "abc" and UUID4.fullmatch(headers["correlation_id"])
    sent = await parse_request(Msg(None, data=b"{}", headers={"correlation_id": "mine"}), _as_parsed)  # type: ignore[arg-type]
    assert sent == {"correlation_id": "mine"}
