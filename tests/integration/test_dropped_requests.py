"""A request the NATS client drops before ekko sees it (its subscription's buffer is full)
still gets a reply: 503 `overloaded` from the connection's error callback (handlers.dropped)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.errors import SlowConsumerError

from handlers.dropped import DroppedRequests, is_request
from service.app import Ekko
from service.sync.barrier import sent_to_server
from service.usecases.metrics import RequestMetrics
from tests.natsd import NatsServer
from tests.sync_helpers import eventually


def _dropped(subject: str, reply: str, sub: Any = None) -> SlowConsumerError:
    return SlowConsumerError(subject=subject, reply=reply, sid=1, sub=sub)


def test_only_requests_a_caller_waits_on_are_answered() -> None:
    class Sub:
        def __init__(self, subject: str) -> None:
            self.subject = subject

    assert is_request(_dropped("ekko.wallets.list", "_INBOX.abc.1"))
    assert not is_request(_dropped("ekko.wallets.list", ""))  # a publish: nobody waits
    assert not is_request(_dropped("EKKO_EVENTS.x", "$JS.ACK.EKKO_EVENTS.c.1.1.1.1.0"))  # an ack would ack it
    assert not is_request(_dropped("_INBOX.abc.1", "x", Sub("_INBOX.abc.*")))  # a reply to our own request


async def test_requests_past_a_full_buffer_get_503_at_once(nats_server: NatsServer) -> None:
    metrics = RequestMetrics()
    dropped = DroppedRequests(metrics)
    release = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            await dropped.answer(service, exc)

    async def slow(msg: Msg) -> None:  # a busy handler: holds the subscription's queue
        await release.wait()
        await msg.respond(b'{"ok":true}')

    service = await nats.connect(nats_server.url, error_cb=on_error)
    caller = await nats.connect(nats_server.url)
    try:
        await service.subscribe("ekko.test.slow", cb=slow, pending_msgs_limit=2)
        await sent_to_server(service)  # flush() may send its PING ahead of the SUB
        asks = [asyncio.create_task(caller.request("ekko.test.slow", b"{}", timeout=10)) for _ in range(10)]

        async def settled() -> (
            bool
        ):  # every request arrived (10, after sent_to_server's echo), every dropped one answered
            return service.stats["in_msgs"] >= 11 and sum(t.done() for t in asks) == dropped.answered >= 7

        await eventually(settled, timeout=10, what="the dropped requests answered")
        answered_while_busy = sum(t.done() for t in asks)
        release.set()
        replies = await asyncio.gather(*asks)
        refused = [r for r in replies if r.headers and r.headers.get("Nats-Service-Error-Code") == "503"]
        served = [r for r in replies if r.data == b'{"ok":true}']
        assert all(json.loads(r.data)["error"]["code"] == "overloaded" for r in refused)
        # Two in the buffer (and one in the handler, when it took it out before the rest came)
        # are served; every other one was dropped and answered before the handler let go.
        assert len(served) in (2, 3) and len(served) + len(refused) == 10
        assert answered_while_busy == len(refused)
        assert dropped.answered == len(refused) == metrics.subjects["ekko.test.slow"].num_errors
    finally:
        release.set()
        await caller.close()
        await service.close()


async def test_the_service_answers_what_its_connection_drops(ekko: Ekko, nats_server: NatsServer) -> None:
    """The service's error callback (what nats-py calls on a drop) replies on the caller's inbox."""
    caller = await nats.connect(nats_server.url)
    try:
        inbox = caller.new_inbox()
        sub = await caller.subscribe(inbox)
        await sent_to_server(caller)  # flush() may send its PING ahead of the SUB
        await ekko._nats_error(_dropped("ekko.wallets.list", inbox))
        reply = await sub.next_msg(timeout=5)
        assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "503"
        assert json.loads(reply.data)["error"]["code"] == "overloaded"
        assert ekko.requests.subjects["ekko.wallets.list"].num_errors == 1
    finally:
        await caller.close()
