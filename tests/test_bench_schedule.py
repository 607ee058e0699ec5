"""The fixed schedule the latency phase and the bare path publish on (bench/schedule.py)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bench import schedule
from bench.schedule import drain, publish_on_schedule


async def test_every_publish_is_started_on_its_own_due_time_and_all_are_awaited() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def publish(index: int) -> None:
        started.append(index)
        await asyncio.sleep(0)
        finished.append(index)

    dues, span = await publish_on_schedule(5, 1000, publish)

    assert started == finished == [0, 1, 2, 3, 4]
    assert [round(b - a, 6) for a, b in itertools.pairwise(dues)] == [0.001] * 4
    assert span >= 0


async def test_a_drain_ends_as_soon_as_everything_expected_arrived() -> None:
    count = 0
    arrived = asyncio.Event()
    seen: list[int] = []

    async def arrive() -> None:
        nonlocal count
        for _ in range(3):
            await asyncio.sleep(0)
            count += 1
            arrived.set()

    task = asyncio.create_task(arrive())
    got = await drain(lambda: count, 3, arrived, seen.append)
    await task

    assert got == 3
    assert seen[-1] == 3


async def test_a_drain_gives_up_after_its_seconds_with_what_arrived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schedule, "DRAIN_SECONDS", 0.3)
    assert await drain(lambda: 1, 2, asyncio.Event()) == 1
