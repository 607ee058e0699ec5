"""The bare path: what the broker, and bare AMQP clients, cost per document at the latency
phase's own loads.

The path's CPU per document (bench/path.py) is taken over the latency phase's fixed loads
(100 to 1,000 documents/s), where the broker handles each message almost alone: a quorum
queue's log write, its fsync and its processes' wake-ups are paid per message rather than
shared by a batch, so the broker's CPU per message there is several times its figure at
saturation (the ceiling run). The floor of the path's broker share is therefore measured
at the same loads: documents of the envelope's size published on the same fixed schedule
(persistent, confirmed, many in flight) to a quorum queue, forwarded to a second one, and
consumed from it (prefetch 256, acked one by one): the path's two broker hops with nothing
of the product's.

The three clients are what the real path's parties must do at the least to move a document:
aiormq, the AMQP library of the product's hot paths, each in its own process as the sender,
the router and the recipient run (bench/bare_client_proc.py; the publisher is this
process). Their CPU is reported beside the floor: no implementation of the path, with these
clients, costs less than the floor plus them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

import aiormq

from bench.bare_client_proc import PERSISTENT
from bench.cpu import started_meters
from bench.router import HERE
from bench.schedule import PAUSE_SECONDS, drain, publish_on_schedule

QUORUM = {"x-queue-type": "quorum"}


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
    and each client's CPU per document over all of them. The queues are deleted at the
    end."""
    first, second = f"{prefix}.bench.bare.hop1", f"{prefix}.bench.bare.hop2"
    connection = await aiormq.connect(amqp_url)
    clients: list[asyncio.subprocess.Process] = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        for name in (first, second):
            await channel.queue_declare(name, durable=True, arguments=QUORUM)
        forwarder = await _client("forward", amqp_url, first, second)
        clients.append(forwarder)
        consumer = await _client("consume", amqp_url, second)
        clients.append(consumer)
        received = 0
        arrived = asyncio.Event()

        async def count_arrivals() -> None:
            nonlocal received
            assert consumer.stdout is not None
            while line := await consumer.stdout.readline():
                received = int(json.loads(line)["n"])
                arrived.set()

        counting = asyncio.create_task(count_arrivals())
        body = os.urandom(size)
        meters = started_meters(broker=broker_pid, forwarder=forwarder.pid, consumer=consumer.pid)
        publisher_started = time.process_time()
        sent = 0
        for rate in loads:
            count = round(rate * seconds)
            await publish_on_schedule(
                count,
                rate,
                lambda _: channel.basic_publish(body, routing_key=first, properties=PERSISTENT),
            )
            sent += count
            label = f"bare path {rate}/s"
            got = await drain(lambda: received, sent, arrived, _reporter(progress, label, sent))
            if got < sent:
                raise RuntimeError(f"the bare path lost documents: {got} of {sent} arrived")
            await asyncio.sleep(PAUSE_SECONDS)
        publisher_seconds = time.process_time() - publisher_started
        for meter in meters.values():
            meter.stop()
        counting.cancel()
        clients_us = {
            "publisher_us": round(1e6 * publisher_seconds / sent),
            "forwarder_us": meters["forwarder"].per_message_us(sent),
            "consumer_us": meters["consumer"].per_message_us(sent),
        }
        known = [us for us in clients_us.values() if us is not None]
        for name in (first, second):
            await channel.queue_delete(name)
        return {
            "loads": list(loads),
            "seconds_per_load": seconds,
            "message_bytes": size,
            "documents": sent,
            "hops": 2,
            "broker_us": meters["broker"].per_message_us(sent),
            "clients": "aiormq",
            **clients_us,
            "clients_us": sum(known) if len(known) == len(clients_us) else None,
        }
    finally:
        for client in clients:
            await _stop(client)
        await connection.close()


async def _client(role: str, amqp_url: str, *queues: str) -> asyncio.subprocess.Process:
    """bench.bare_client_proc in ``role``, once it says it is consuming."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_client_proc",
        role,
        amqp_url,
        *queues,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(HERE),
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    if not ready:
        await process.wait()
        raise RuntimeError(f"the bare path's {role} client ended ({process.returncode})")
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Close its stdin (its signal to stop), and wait for it a while before killing it."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _reporter(
    progress: Callable[[str, int, int], None] | None, label: str, expected: int
) -> Callable[[int], None]:
    def report(got: int) -> None:
        if progress is not None:
            progress(label, got, expected)

    return report
