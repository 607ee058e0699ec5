"""The broker path everything stands on: declare, publish with confirms, consume, ack."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

pytestmark = pytest.mark.broker


async def test_message_published_with_confirm_is_consumed_and_acked(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(
            f"smoke.{uuid.uuid4()}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = uuid.uuid4().bytes
        confirmation = await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue.name,
        )
        assert confirmation is not None  # a broker ack, not a nack or a return

        received = await queue.get(timeout=5, fail=True)
        assert received is not None
        assert received.body == body
        assert received.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await received.ack()

        await asyncio.sleep(0.1)
        assert await queue.get(fail=False) is None  # acked: nothing left to redeliver
        await queue.delete(if_unused=False, if_empty=False)


async def test_unroutable_mandatory_publish_is_returned_not_lost(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await channel.default_exchange.publish(
                aio_pika.Message(b"x"), routing_key=f"nobody.{uuid.uuid4()}", mandatory=True
            )
