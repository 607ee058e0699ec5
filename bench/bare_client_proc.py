"""One bare client of the bare path (bench/bare_path.py) in its own process, as each party
of the real path runs in its own: aiormq, the AMQP library of the product's hot paths, and
nothing of the product.

    python -m bench.bare_client_proc forward URL FROM TO
    python -m bench.bare_client_proc consume URL QUEUE

``forward`` consumes FROM (prefetch 256) and republishes each message to TO (persistent,
confirmed), acking it once confirmed; ``consume`` acks each message of QUEUE and reports how
many it has acked so far: a line ``{"n": count}``, :data:`REPORT_SECONDS` after the first
arrival of each batch (not a line per message, so the bench process reading them does not
wake per document). Each prints ``{"event": "ready"}`` once consuming and runs until stdin
closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiormq
from aiormq.abc import DeliveredMessage

PREFETCH = 256  # as the ceiling's forwarder
REPORT_SECONDS = 0.02
PERSISTENT = aiormq.spec.Basic.Properties(delivery_mode=2)


def _say(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def forward(channel: aiormq.abc.AbstractChannel, source: str, target: str) -> None:
    async def on_message(message: DeliveredMessage) -> None:
        await channel.basic_publish(message.body, routing_key=target, properties=PERSISTENT)
        await channel.basic_ack(message.delivery_tag)  # type: ignore[arg-type]

    await channel.basic_consume(source, on_message)


async def consume(channel: aiormq.abc.AbstractChannel, queue: str) -> None:
    loop = asyncio.get_running_loop()
    acked = 0
    report: asyncio.TimerHandle | None = None

    def flush() -> None:
        nonlocal report
        report = None
        _say({"n": acked})

    async def on_message(message: DeliveredMessage) -> None:
        nonlocal acked, report
        await channel.basic_ack(message.delivery_tag)  # type: ignore[arg-type]
        acked += 1
        if report is None:
            report = loop.call_later(REPORT_SECONDS, flush)

    await channel.basic_consume(queue, on_message)


async def main(role: str, url: str, queues: list[str]) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=role == "forward")
        await channel.basic_qos(prefetch_count=PREFETCH)
        if role == "forward":
            await forward(channel, *queues)
        else:
            await consume(channel, *queues)
        _say({"event": "ready"})
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
