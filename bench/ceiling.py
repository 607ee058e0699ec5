"""The broker's ceiling: a bare consume → republish forwarder with the router's durability.

Quorum queues, persistent messages, publisher confirms, ack after the confirm, prefetch 256
(so up to 256 republishes in flight), and the same message size as the router test.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

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

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        queue = await consume_channel.get_queue(source, ensure=False)
        done = asyncio.Event()
        forwarded = 0
        tasks: set[asyncio.Task[None]] = set()

        async def forward(message: AbstractIncomingMessage) -> None:
            nonlocal forwarded
            await publish_channel.default_exchange.publish(
                aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=target,
            )
            await message.ack()
            forwarded += 1
            if progress is not None:
                progress(1)
            if forwarded >= count:
                done.set()

        async def on_message(message: AbstractIncomingMessage) -> None:
            # Many republishes in flight: the consumer callback does not wait for confirms.
            task = asyncio.create_task(forward(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        broker = CpuMeter(broker_pid)
        broker.start()
        cpu_started = time.process_time()
        started = time.perf_counter()
        tag = await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=max(60.0, count / 200))
        elapsed = time.perf_counter() - started
        forwarder_cpu = time.process_time() - cpu_started
        broker.stop()
        await queue.cancel(tag)
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
