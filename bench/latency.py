"""Adapter send throughput and end-to-end latency, with the real AdapterClient at both ends
and the real Router (SQLite store) in a subprocess between them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence

from adapters import AdapterClient, Sealed
from bench.router import RouterProcess
from bench.world import IN_FLIGHT, ONE_RECIPIENT, SENDER, World, next_number, payload_edxml
from tests.adapter_harness import Deployment

PAYLOAD_BYTES = 4096
DRAIN_SECONDS = 60.0  # how long to wait for stragglers after the schedule ends


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _adapter(world: World, deployment: Deployment, code: str) -> AdapterClient:
    return AdapterClient(deployment.config(code), auto_arrival=False)


async def measure_adapter_and_latency(
    world: World,
    *,
    loads: Sequence[int],
    seconds: float,
    publish_sample: int,
    progress: Callable[[str, int, int], None],
) -> tuple[dict[str, object], list[dict[str, object]], int | None]:
    """Return (adapter throughput, latency per offered load, router peak RSS KiB)."""
    deployment = Deployment(world.exchange, None, world.root, world.directory_file)  # type: ignore[arg-type]
    sender = _adapter(world, deployment, SENDER)
    recipient = _adapter(world, deployment, ONE_RECIPIENT[0])
    await sender.start()
    await recipient.start()
    names = world.names
    try:
        # 1. Seal every envelope the latency phase needs (timed: validate, sign, encrypt).
        total = sum(math.ceil(rate * seconds) for rate in loads)
        sealed: list[Sealed] = []
        started = time.perf_counter()
        for done in range(total):
            edxml = payload_edxml(
                SENDER, ONE_RECIPIENT, next_number(), PAYLOAD_BYTES, run=world.run
            )
            sealed.append(sender.seal(edxml))
            progress("seal", done + 1, total)
        seal_seconds = time.perf_counter() - started

        # 2. Publish a sample with many in flight (no router running), then purge it: the
        #    router never sees those, so the same envelopes serve the latency phase.
        await world.purge(names.inbound_queue)
        sample = sealed[: min(publish_sample, len(sealed))]
        limit = asyncio.Semaphore(IN_FLIGHT)
        published = 0

        async def publish(item: Sealed) -> None:
            nonlocal published
            async with limit:
                await sender.publish(item)
            published += 1
            progress("publish", published, len(sample))

        started = time.perf_counter()
        await asyncio.gather(*(publish(item) for item in sample))
        publish_seconds = time.perf_counter() - started
        await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
        seal_per_s = total / seal_seconds
        publish_per_s = len(sample) / publish_seconds
        adapter = {
            "payload_bytes": PAYLOAD_BYTES,
            "envelope_bytes": len(sealed[0].body),
            "sealed": total,
            "seal_per_s": round(seal_per_s, 1),
            "published": len(sample),
            "publish_per_s": round(publish_per_s, 1),
            "send_per_s": round(1 / (1 / seal_per_s + 1 / publish_per_s), 1),
        }

        # 3. Latency at fixed offered loads, through a running router.
        router = RouterProcess(world, f"sqlite+aiosqlite:///{world.root / 'latency.db'}", "lat")
        await router.start()
        loop = asyncio.get_running_loop()
        arrivals: dict[str, float] = {}
        arrived = asyncio.Event()

        async def consume() -> None:
            async for item in recipient.received():
                arrivals[item.envelope_id] = loop.time()
                arrived.set()

        consumer = asyncio.create_task(consume())
        results: list[dict[str, object]] = []
        offset = 0
        try:
            for rate in loads:
                batch = sealed[offset : offset + math.ceil(rate * seconds)]
                offset += len(batch)
                results.append(
                    await _one_load(sender, batch, rate, arrivals, arrived, progress, loop)
                )
                await asyncio.sleep(0.3)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await router.stop()
        return adapter, results, router.peak_rss_kib
    finally:
        await sender.close()
        await recipient.close()


async def _one_load(
    sender: AdapterClient,
    batch: Sequence[Sealed],
    rate: int,
    arrivals: dict[str, float],
    arrived: asyncio.Event,
    progress: Callable[[str, int, int], None],
    loop: asyncio.AbstractEventLoop,
) -> dict[str, object]:
    """Publish ``batch`` at ``rate`` per second on a fixed schedule; latency counts from each
    envelope's scheduled time (so a late publish is not forgiven) to its ``received()``."""
    scheduled: dict[str, float] = {}
    tasks: list[asyncio.Task[object]] = []
    start = loop.time() + 0.05
    for index, item in enumerate(batch):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[item.header.envelope_id] = due
        tasks.append(asyncio.create_task(sender.publish(item)))
    publish_span = loop.time() - start
    await asyncio.gather(*tasks)
    deadline = loop.time() + DRAIN_SECONDS
    label = f"{rate}/s"
    while loop.time() < deadline:
        got = sum(1 for envelope in scheduled if envelope in arrivals)
        progress(label, got, len(batch))
        if got >= len(batch):
            break
        arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), timeout=0.2)
    latencies = [
        (arrivals[envelope] - due) * 1000
        for envelope, due in scheduled.items()
        if envelope in arrivals
    ]
    entry: dict[str, object] = {
        "offered_per_s": rate,
        "achieved_publish_per_s": round(len(batch) / max(publish_span, 1e-9), 1),
        "sent": len(batch),
        "received": len(latencies),
        "lost_or_late": len(batch) - len(latencies),
    }
    for name, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        entry[name] = round(percentile(latencies, fraction), 2) if latencies else None
    entry["max_ms"] = round(max(latencies), 2) if latencies else None
    return entry
