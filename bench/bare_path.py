"""The bare path: what the broker costs per document at the latency phase's own loads.

The path's CPU per document (bench/path.py) is taken over the latency phase's fixed loads
(100 to 1,000 documents/s), where the broker handles each message almost alone: a quorum
queue's log write, its fsync and its processes' wake-ups are paid per message rather than
shared by a batch, so the broker's CPU per message there is several times its figure at
saturation (the ceiling run). The floor of the path's broker share is therefore measured
at the same loads: documents of the envelope's size published on the same fixed schedule
(persistent, confirmed, many in flight) to a quorum queue, forwarded by the ceiling's bare
forwarder to a second one, and consumed from it (prefetch 256, acked one by one): the
path's two broker hops with nothing of the product's. The three clients run in this one
process; their CPU is reported too, as what bare AMQP clients cost at those loads (three
processes, as the product runs, would each pay their own wake-ups).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.ceiling import PREFETCH, Forwarder
from bench.cpu import CpuMeter
from bench.schedule import PAUSE_SECONDS, drain, publish_on_schedule


async def measure_bare_path(
    amqp_url: str,
    prefix: str,
    *,
    loads: Sequence[int],
    seconds: float,
    size: int,
    broker_pid: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, object]:
    """``loads`` (documents/s) for ``seconds`` each through two quorum queues; the broker's
    and the clients' CPU per document over all of them, and the documents each load
    carried. The queues are deleted at the end."""
    first, second = f"{prefix}.bench.bare.hop1", f"{prefix}.bench.bare.hop2"
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        for name in (first, second):
            await publish_channel.declare_queue(
                name, durable=True, arguments={"x-queue-type": "quorum"}
            )
        received = 0
        arrived = asyncio.Event()

        async def consume(message: AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            arrived.set()

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        last_hop = await consume_channel.get_queue(second, ensure=False)
        forwarder = await Forwarder.open(connection, publish_channel, first, second, lambda: None)
        await forwarder.start()
        tag = await last_hop.consume(consume)

        body = os.urandom(size)
        broker = CpuMeter(broker_pid)
        broker.start()
        cpu_started = time.process_time()
        sent = 0
        for rate in loads:
            count = round(rate * seconds)
            await publish_on_schedule(
                count,
                rate,
                lambda _: publish_channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=first,
                ),
            )
            sent += count
            label = f"bare path {rate}/s"
            got = await drain(lambda: received, sent, arrived, _reporter(progress, label, sent))
            if got < sent:
                raise RuntimeError(f"the bare path lost documents: {got} of {sent} arrived")
            await asyncio.sleep(PAUSE_SECONDS)
        clients_seconds = time.process_time() - cpu_started
        broker.stop()
        await forwarder.stop()
        await last_hop.cancel(tag)
        for name in (first, second):
            await publish_channel.queue_delete(name)
        return {
            "loads": list(loads),
            "seconds_per_load": seconds,
            "message_bytes": size,
            "documents": sent,
            "hops": 2,
            "broker_us": broker.per_message_us(sent),
            "clients_us": round(1e6 * clients_seconds / sent),
        }
    finally:
        await connection.close()


def _reporter(
    progress: Callable[[str, int, int], None] | None, label: str, expected: int
) -> Callable[[int], None]:
    def report(got: int) -> None:
        if progress is not None:
            progress(label, got, expected)

    return report
