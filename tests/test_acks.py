"""Acknowledger: acks in runs, never past a delivery still in progress."""

from __future__ import annotations

import asyncio
from typing import cast

from aio_pika.abc import AbstractIncomingMessage

from backbone.router.acks import Acknowledger


class Channel:
    def __init__(self) -> None:
        self.is_closed = False
        self.frames: list[tuple[str, int, bool]] = []  # ("ack"|"reject", tag, multiple)


class Delivery:
    def __init__(self, channel: Channel, tag: int) -> None:
        self.channel = channel
        self.delivery_tag = tag

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append(("ack", self.delivery_tag, multiple))

    async def reject(self, requeue: bool = False) -> None:
        assert requeue
        self.channel.frames.append(("reject", self.delivery_tag, False))


def deliver(acks: Acknowledger, channel: Channel, *tags: int) -> list[AbstractIncomingMessage]:
    messages = [cast(AbstractIncomingMessage, Delivery(channel, tag)) for tag in tags]
    for message in messages:
        acks.received(message)
    return messages


async def turn() -> None:
    """Let the scheduled flush and the ack tasks it starts run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_envelopes_settled_in_one_turn_are_acked_with_one_frame() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = deliver(acks, channel, 1, 2, 3, 4)
    for message in reversed(messages):
        acks.ack(message)
    await turn()
    assert channel.frames == [("ack", 4, True)]


async def test_an_ack_never_covers_a_delivery_still_in_progress() -> None:
    acks, channel = Acknowledger(), Channel()
    one, two, three, four = deliver(acks, channel, 1, 2, 3, 4)
    acks.ack(one)
    acks.ack(three)
    acks.ack(four)
    await turn()
    assert channel.frames == [("ack", 1, True)]  # 2 is in progress: 3 and 4 wait

    acks.ack(two)
    await turn()
    assert channel.frames == [("ack", 1, True), ("ack", 4, True)]


async def test_a_rejected_delivery_goes_back_at_once_and_no_longer_holds_the_run() -> None:
    acks, channel = Acknowledger(), Channel()
    one, two, three = deliver(acks, channel, 1, 2, 3)
    acks.ack(one)
    await acks.reject(two)
    acks.ack(three)
    await turn()
    assert channel.frames == [("reject", 2, False), ("ack", 3, True)]


async def test_deliveries_of_a_closed_channel_are_left_for_the_broker_to_redeliver() -> None:
    acks, old, new = Acknowledger(), Channel(), Channel()
    (stale,) = deliver(acks, old, 7)
    old.is_closed = True  # a reconnect: the broker requeued delivery 7
    (fresh,) = deliver(acks, new, 1)
    acks.ack(stale)
    acks.ack(fresh)
    await turn()
    assert old.frames == []
    assert new.frames == [("ack", 1, True)]


async def test_drain_sends_what_is_settled_and_waits_for_it() -> None:
    acks, channel = Acknowledger(), Channel()
    (one,) = deliver(acks, channel, 1)
    acks.ack(one)
    await acks.drain()
    assert channel.frames == [("ack", 1, True)]
