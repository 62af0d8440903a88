"""The relay's publish path (service.sync.acks): every message acknowledged by JetStream, in
order, and each failure raised as nats-py's js.publish raises it, never waited out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NoStreamResponseError

from service.sync import acks
from service.sync.acks import AckedPublisher
from tests.natsd import NatsServer

# The service user may publish and consume under ekko.>, so the test streams live there.
SUBJECTS = "ekko.acktest"


@pytest.fixture
def nc(service_nc: NATS) -> NATS:
    return service_nc


@pytest.fixture
async def publisher(nc: NATS) -> AsyncIterator[AckedPublisher]:
    pub = AckedPublisher(nc, timeout=2.0)
    await pub.start()
    yield pub
    await pub.stop()


async def stream(nc: NATS, name: str, **config: object) -> str:
    subject = f"{SUBJECTS}.{name}"
    await nc.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{subject}.>"], **config))  # type: ignore[arg-type]
    return subject


async def test_more_than_a_window_is_stored_in_order_with_headers(nc: NATS, publisher: AckedPublisher) -> None:
    subject = await stream(nc, "ACK_ORDER")
    count = acks.WINDOW * 2 + 7  # windows end mid-way: none lost at a boundary
    await publisher.publish(
        [(f"{subject}.m", f"{n}".encode(), {"Nats-Msg-Id": f"id-{n}", "X-N": str(n)}) for n in range(count)]
    )

    js = nc.jetstream()
    assert (await js.stream_info("ACK_ORDER")).state.messages == count
    for seq in (1, acks.WINDOW, acks.WINDOW + 1, count):
        msg = await js.get_msg("ACK_ORDER", seq)
        assert msg.data == f"{seq - 1}".encode()
        assert msg.headers is not None and msg.headers["X-N"] == str(seq - 1)


async def test_a_repeated_msg_id_is_acknowledged_and_stored_once(nc: NATS, publisher: AckedPublisher) -> None:
    subject = await stream(nc, "ACK_DUP")
    message = (f"{subject}.m", b"x", {"Nats-Msg-Id": "same"})
    await publisher.publish([message, message])
    await publisher.publish([message])  # a batch published again after a lost ack
    assert (await nc.jetstream().stream_info("ACK_DUP")).state.messages == 1


async def test_a_refusal_raises_the_api_error_at_once(nc: NATS, publisher: AckedPublisher) -> None:
    """nats-py's publish_async would wait out its timeout here; the relay needs err_code 10054
    (message too large for the stream) to move the change to the dead letters."""
    subject = await stream(nc, "ACK_SMALL", max_msg_size=16)
    started = time.monotonic()
    with pytest.raises(APIError) as refused:
        await publisher.publish([(f"{subject}.ok", b"small", None), (f"{subject}.big", b"x" * 100, None)])
    assert refused.value.err_code == 10054, refused.value
    assert time.monotonic() - started < 1.0
    assert (await nc.jetstream().stream_info("ACK_SMALL")).state.messages == 1  # the one before it is stored


async def test_the_wrong_expected_stream_is_refused(nc: NATS, publisher: AckedPublisher) -> None:
    subject = await stream(nc, "ACK_EXPECT")
    with pytest.raises(APIError) as refused:
        await publisher.publish([(f"{subject}.m", b"x", {"Nats-Expected-Stream": "ANOTHER"})])
    assert refused.value.err_code == 10060, refused.value  # JSStreamNotMatchErr


async def test_no_stream_for_the_subject_raises_no_stream_response(publisher: AckedPublisher) -> None:
    with pytest.raises(NoStreamResponseError):
        await publisher.publish([(f"{SUBJECTS}.nowhere.m", b"x", None)])


async def test_acks_that_never_come_time_out_and_leave_nothing_waiting(nc: NATS) -> None:
    """A core subscriber that takes the messages but never replies: no ack within the timeout."""
    taken: list[bytes] = []

    async def swallow(msg: nats.aio.msg.Msg) -> None:
        taken.append(msg.data)

    await nc.subscribe(f"{SUBJECTS}.silent.>", cb=swallow)
    publisher = AckedPublisher(nc, timeout=0.3)
    await publisher.start()
    with pytest.raises(TimeoutError):
        await publisher.publish([(f"{SUBJECTS}.silent.m", b"x", None)] * 3)
    assert len(taken) == 3
    assert not publisher._waiting  # a late ack finds nothing to resolve
    await publisher.stop()


async def test_acks_keep_coming_after_the_server_restarts(nats_server: NatsServer) -> None:
    """nats-py renews the reply subscription on reconnect; the publisher keeps working."""
    nc = await nats.connect(nats_server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        subject = await stream(nc, "ACK_RESTART")
        publisher = AckedPublisher(nc, timeout=2.0)
        await publisher.start()
        await publisher.publish([(f"{subject}.m", b"before", None)])
        nats_server.restart()
        deadline = time.monotonic() + 20
        while True:  # the first publishes after the restart may time out while it reconnects
            try:
                await publisher.publish([(f"{subject}.m", b"after", {"Nats-Msg-Id": "after"})])
                break
            except (TimeoutError, nats.errors.Error):
                assert time.monotonic() < deadline, "no ack after the restart"
                await asyncio.sleep(0.2)
        info = await nc.jetstream().stream_info("ACK_RESTART")
        assert info.state.messages == 2
    finally:
        await nc.close()
