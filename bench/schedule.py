"""The fixed schedule the latency phase and the bare path both publish on: a load offered at
a steady rate, then drained before the next one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

PAUSE_SECONDS = 0.3  # between loads, so one load's stragglers do not count in the next
DRAIN_SECONDS = 60.0  # how long to wait for stragglers after the schedule ends


async def publish_on_schedule(
    count: int, rate: float, publish: Callable[[int], Awaitable[object]]
) -> tuple[list[float], float]:
    """Start ``publish(i)`` for i in ``range(count)`` at ``rate`` per second, each on its own
    time whether or not the earlier ones finished (many in flight), and wait for them all.
    Returns each one's due time (the loop's clock) and the seconds the starts took."""
    loop = asyncio.get_running_loop()
    dues: list[float] = []
    tasks: list[asyncio.Task[object]] = []
    start = loop.time() + 0.05
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        dues.append(due)
        tasks.append(asyncio.ensure_future(publish(index)))
    span = loop.time() - start
    await asyncio.gather(*tasks)
    return dues, span


async def drain(
    arrived_so_far: Callable[[], int],
    expected: int,
    arrived: asyncio.Event,
    on_wait: Callable[[int], None] = lambda _: None,
) -> int:
    """Wait, at most :data:`DRAIN_SECONDS`, until ``arrived_so_far()`` reaches ``expected``;
    ``arrived`` is set by whoever counts an arrival. Returns the last count."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    got = arrived_so_far()
    while got < expected and loop.time() < deadline:
        on_wait(got)
        arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), timeout=0.2)
        got = arrived_so_far()
    on_wait(got)
    return got
