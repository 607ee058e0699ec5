"""``vdx_asyncio_tasks``: the tasks alive in the process's event loop, read at each scrape of
/metrics over real HTTP (``make soak`` watches it for leaks)."""

from __future__ import annotations

import asyncio
import math

import httpx

from backbone.observability.http import HttpServer, make_app
from backbone.observability.metrics import ASYNCIO_TASKS
from tests.support import free_port


async def test_the_gauge_counts_tasks_started_and_finished_in_the_serving_loop() -> None:
    port = free_port()
    server = HttpServer(make_app({}, title="test"), port=port)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            before = tasks_in((await http.get("/metrics")).text)
            release = asyncio.Event()
            waiting = [asyncio.create_task(release.wait()) for _ in range(25)]
            during = tasks_in((await http.get("/metrics")).text)
            release.set()
            await asyncio.gather(*waiting)
            after = tasks_in((await http.get("/metrics")).text)
    finally:
        await server.stop()
    assert during == before + 25
    assert after == before


def tasks_in(exposition: str) -> float:
    (line,) = [line for line in exposition.splitlines() if line.startswith("vdx_asyncio_tasks ")]
    return float(line.split()[1])


def test_outside_any_event_loop_the_gauge_reads_not_a_number() -> None:
    (sample,) = ASYNCIO_TASKS.collect()[0].samples
    assert math.isnan(sample.value)
