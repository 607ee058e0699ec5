"""Adapter send throughput and end-to-end latency, with the real AdapterClient at both ends
and the real Router (SQLite store) in a subprocess between them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters import AdapterClient, Sealed
from adapters.config import AdapterConfig
from backbone.heap import freeze_start_up
from bench.cpu import started_meters
from bench.router import HERE, RouterProcess
from bench.schedule import PAUSE_SECONDS, drain, publish_on_schedule
from bench.world import IN_FLIGHT, ONE_RECIPIENT, SENDER, World, next_number, payload_edxml
from testkit import Deployment

PAYLOAD_BYTES = 4096
CAPACITY_FRACTION = 0.6  # issue 21: p99 at 60 % of the path's measured capacity


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """What :func:`measure_adapter_and_latency` measured."""

    adapter: dict[str, object]  # seal and publish throughput
    loads: list[dict[str, object]]  # latency per fixed offered load
    router_peak_rss_kib: int | None
    cpu: dict[str, object]  # CPU per document by party over the fixed loads, and capacity
    at_capacity: dict[str, object] | None  # latency at CAPACITY_FRACTION of that capacity


def latency_path_budget(per_document: dict[str, object]) -> dict[str, object]:
    """CPU per document along the latency path (publish, router, broker, recipient: the
    envelopes are sealed beforehand) and the rate the cores could carry at that cost."""
    parts = [per_document[k] for k in ("sender_us", "router_us", "broker_us", "recipient_us")]
    if any(part is None for part in parts):
        return {**per_document, "total_us": None, "cpu_bound_per_s": None}
    total = sum(float(str(part)) for part in parts)
    cpus = os.cpu_count() or 1
    return {
        **per_document,
        "total_us": round(total),
        "cpu_bound_per_s": round(cpus * 1e6 / total, 1) if total else None,
    }


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
    broker_pid: int | None = None,
) -> LatencyRun:
    """Seal and publish throughput, then latency at each of ``loads`` and at
    :data:`CAPACITY_FRACTION` of the capacity the fixed loads' CPU per document gives."""
    deployment = Deployment.without_router(world.exchange, world.root)
    sender = _adapter(world, deployment, SENDER)
    recipient = _adapter(world, deployment, ONE_RECIPIENT[0])
    await sender.start()
    await recipient.start()
    names = world.names
    try:
        # 1. Seal every envelope the latency phase needs (timed: validate, sign, encrypt).
        total = sum(math.ceil(rate * seconds) for rate in loads)
        started, seal_cpu = time.perf_counter(), time.process_time()
        sealed = _seal(world, sender, total, progress)
        seal_seconds = time.perf_counter() - started
        seal_cpu = time.process_time() - seal_cpu

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
            "seal_cpu_us": round(1e6 * seal_cpu / total),
            "published": len(sample),
            "publish_per_s": round(publish_per_s, 1),
            "send_per_s": round(1 / (1 / seal_per_s + 1 / publish_per_s), 1),
        }

        # 3. Latency at fixed offered loads, through a running router, to the recipient's
        #    adapter in a process of its own (as at a real agency: the sender's publishing
        #    and the recipient's opening do not share a core's worth of one process).
        await recipient.close()
        router = RouterProcess(world, f"sqlite+aiosqlite:///{world.root / 'latency.db'}", "lat")
        await router.start()
        loop = asyncio.get_running_loop()
        arrivals: dict[str, float] = {}
        arrived = asyncio.Event()
        receiver = await start_recipient(world, deployment.config(ONE_RECIPIENT[0]))
        to_loop_time = loop.time() - time.time()  # the recipient reports wall-clock times

        async def consume() -> None:
            assert receiver.stdout is not None
            while line := await receiver.stdout.readline():
                arrival = json.loads(line)
                if "e" in arrival:  # not the "stopped" line
                    arrivals[arrival["e"]] = float(arrival["t"]) + to_loop_time
                    arrived.set()

        consumer = asyncio.create_task(consume())
        results: list[dict[str, object]] = []
        offset = 0
        meters = started_meters(broker=broker_pid, router=router.pid, recipient=receiver.pid)
        sender_cpu = time.process_time()
        try:
            for rate in loads:
                batch = sealed[offset : offset + math.ceil(rate * seconds)]
                offset += len(batch)
                results.append(await _one_load(sender, batch, rate, arrivals, arrived, progress))
                await asyncio.sleep(PAUSE_SECONDS)
            sender_seconds = time.process_time() - sender_cpu
            for meter in meters.values():
                meter.stop()
            cpu = latency_path_budget(
                {
                    "documents": offset,
                    "sender_us": round(1e6 * sender_seconds / offset),
                    "router_us": meters["router"].per_message_us(offset),
                    "broker_us": meters["broker"].per_message_us(offset),
                    "recipient_us": meters["recipient"].per_message_us(offset),
                }
            )
            # The capacity this run measured: what the cores carry at that CPU per document.
            capacity = cpu["cpu_bound_per_s"]
            at_capacity = None
            if capacity is not None:
                rate = max(1, round(CAPACITY_FRACTION * float(str(capacity))))
                label = f"{rate}/s ({CAPACITY_FRACTION:.0%})"
                batch = _seal(world, sender, math.ceil(rate * seconds), progress, label="seal")
                at_capacity = await _one_load(
                    sender, batch, rate, arrivals, arrived, progress, label=label
                )
                at_capacity |= {
                    "capacity_per_s": capacity,
                    "capacity_basis": "cpu",
                    "fraction": CAPACITY_FRACTION,
                }
        finally:
            receiver.terminate()
            await receiver.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(consumer, timeout=10)
            await router.stop()
        return LatencyRun(adapter, results, router.peak_rss_kib, cpu, at_capacity)
    finally:
        await sender.close()
        await recipient.close()


def _seal(
    world: World,
    sender: AdapterClient,
    count: int,
    progress: Callable[[str, int, int], None],
    *,
    label: str = "seal",
) -> list[Sealed]:
    """``count`` fresh 4 KiB documents sealed by the sender's adapter (validate, sign,
    encrypt)."""
    sealed: list[Sealed] = []
    for done in range(count):
        edxml = payload_edxml(SENDER, ONE_RECIPIENT, next_number(), PAYLOAD_BYTES, run=world.run)
        sealed.append(sender.seal(edxml))
        progress(label, done + 1, count)
    # The batch lives through the loads, in this process that publishes them; a real sender
    # holds no such batch. Out of the full collections (as a worker's start-up heap is):
    # walking it paused the publishing 70-85 ms.
    freeze_start_up()
    return sealed


async def start_recipient(
    world: World, config: AdapterConfig, *, wrapper: Sequence[str] = ()
) -> asyncio.subprocess.Process:
    """bench.recipient_proc for ``config``, once it says it is consuming (or, run under a
    ``wrapper`` command such as a profiler, once it wrote its first line)."""
    spec = config.model_dump(mode="json") | {"amqp_url": config.amqp_url.get_secret_value()}
    spec_file = world.root / "recipient.json"
    spec_file.write_text(json.dumps(spec))
    log = (world.root / "recipient.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        "bench.recipient_proc",
        str(spec_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=str(HERE),
    )
    log.close()
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    if not ready:
        raise RuntimeError(f"the recipient process ended (see {world.root}/recipient.log)")
    return process


async def _one_load(
    sender: AdapterClient,
    batch: Sequence[Sealed],
    rate: int,
    arrivals: dict[str, float],
    arrived: asyncio.Event,
    progress: Callable[[str, int, int], None],
    *,
    label: str | None = None,
) -> dict[str, object]:
    """Publish ``batch`` at ``rate`` per second on a fixed schedule; latency counts from each
    envelope's scheduled time (so a late publish is not forgiven) to its ``received()``."""
    dues, publish_span = await publish_on_schedule(
        len(batch), rate, lambda index: sender.publish(batch[index])
    )
    scheduled = {item.header.envelope_id: due for item, due in zip(batch, dues, strict=True)}
    label = label or f"{rate}/s"
    await drain(
        lambda: sum(1 for envelope in scheduled if envelope in arrivals),
        len(batch),
        arrived,
        lambda got: progress(label, got, len(batch)),
    )
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
