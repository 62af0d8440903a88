"""A barrier on one NATS connection: once `sent_to_server` returns, the server has every
subscription made on the connection before the call.

nats-py's `flush()` is not that barrier: it writes its PING straight to the socket while
SUB commands may still wait in the client's pending buffer, so the PONG can come back before
the server has seen them (measured: about one service start in five answered a request
made right after start with "no responders"). A message the connection sends to itself goes
through the same buffer as the SUBs, after them, so receiving it proves they arrived."""

from __future__ import annotations

import contextlib

import nats.errors
from nats.aio.client import Client as NATS


async def sent_to_server(connection: NATS, timeout: float = 10.0) -> None:
    inbox = connection.new_inbox()
    echo = await connection.subscribe(inbox)
    try:
        await connection.publish(inbox, b"")
        await echo.next_msg(timeout=timeout)
    finally:
        with contextlib.suppress(nats.errors.Error):  # closed meanwhile: nothing left to remove
            await echo.unsubscribe()
