"""The broker's ceiling: a bare consume → republish forwarder with the router's durability.

Quorum queues, persistent messages, publisher confirms, ack after the confirm, prefetch 256
(so up to 256 republishes in flight), and the same message size as the router test.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)

from bench.cpu import CpuMeter
from bench.world import IN_FLIGHT

PREFETCH = 256


async def measure_ceiling(
    amqp_url: str,
    prefix: str,
    *,
    count: int,
    size: int,
    progress: Callable[[int], None] | None = None,
    broker_pid: int | None = None,
) -> dict[str, float | int | None]:
    """Forward ``count`` messages of ``size`` bytes from one quorum queue to another; the
    rate counts from the first consume until the last message is acked (after its confirm)."""
    source, target = f"{prefix}.bench.ceiling.source", f"{prefix}.bench.ceiling.target"
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        arguments = {"x-queue-type": "quorum"}
        for name in (source, target):
            await publish_channel.declare_queue(name, durable=True, arguments=arguments)
        body = os.urandom(size)
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def fill() -> None:
            async with limit:
                await publish_channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=source,
                )

        await asyncio.gather(*(fill() for _ in range(count)))

        done = asyncio.Event()
        forwarded = 0

        def counted() -> None:
            nonlocal forwarded
            forwarded += 1
            if progress is not None:
                progress(1)
            if forwarded >= count:
                done.set()

        forwarder = await Forwarder.open(connection, publish_channel, source, target, counted)
        broker = CpuMeter(broker_pid)
        broker.start()
        cpu_started = time.process_time()
        started = time.perf_counter()
        await forwarder.start()
        await asyncio.wait_for(done.wait(), timeout=max(60.0, count / 200))
        elapsed = time.perf_counter() - started
        forwarder_cpu = time.process_time() - cpu_started
        broker.stop()
        await forwarder.stop()
        return {
            "messages": count,
            "message_bytes": size,
            "seconds": round(elapsed, 3),
            "per_s": round(count / elapsed, 1),
            "forwarder_cpu_us_per_message": round(1e6 * forwarder_cpu / count),
            "broker_cpu_us_per_message": broker.per_message_us(count),
        }
    finally:
        await connection.close()


class Forwarder:
    """The bare forwarder: consume ``source`` (manual ack, prefetch :data:`PREFETCH`),
    republish each message persistent to ``target`` with a confirm, ack it after the
    confirm; the consumer callback does not wait, so many republishes are in flight."""

    def __init__(self, queue: AbstractQueue, forward: Callable[[AbstractIncomingMessage], Any]):
        self._queue, self._forward = queue, forward
        self._tasks: set[asyncio.Task[None]] = set()
        self._tag: str | None = None

    @classmethod
    async def open(
        cls,
        connection: AbstractConnection,
        publish_channel: AbstractChannel,
        source: str,
        target: str,
        forwarded: Callable[[], None],
    ) -> Forwarder:
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        queue = await consume_channel.get_queue(source, ensure=False)

        async def forward(message: AbstractIncomingMessage) -> None:
            await publish_channel.default_exchange.publish(
                aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=target,
            )
            await message.ack()
            forwarded()

        return cls(queue, forward)

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Many republishes in flight: the consumer callback does not wait for confirms.
        task = asyncio.create_task(self._forward(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._tag is not None:
            await self._queue.cancel(self._tag)
