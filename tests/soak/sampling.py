"""One sample every interval: each process's RSS, open file descriptors and asyncio tasks,
the exchange's queue depths and the router's store size."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from backbone.broker.management import ManagementClient

__all__ = ["Sample", "Sampler", "Watched", "tasks_in"]


@dataclass(frozen=True)
class Watched:
    """A process to sample: ``pid`` is asked each time (a restarted router has a new one);
    ``metrics_url`` serves its ``vdx_asyncio_tasks``."""

    name: str
    pid: Callable[[], int | None]
    metrics_url: str


@dataclass
class Sample:
    at: float  # seconds since the run started
    rss: dict[str, float] = field(default_factory=dict)  # bytes, per process
    fds: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=dict)
    queued: float = math.nan  # messages ready or unacked in the run's queues but quarantine
    quarantined: float = math.nan  # refused envelopes kept for operators: one per refusal
    store_bytes: float = math.nan
    routed: float = math.nan  # envelopes the router has routed so far (all incarnations)


class Sampler:
    def __init__(
        self,
        processes: list[Watched],
        management: ManagementClient,
        prefix: str,
        store_files: list[Path],
        routed: Callable[[], int],
    ) -> None:
        self.processes = processes
        self.management = management
        self.prefix = prefix
        self.store_files = store_files
        self.routed = routed
        self.samples: list[Sample] = []
        self._http = httpx.AsyncClient(timeout=5)

    async def sample(self, at: float) -> Sample:
        sample = Sample(at=round(at, 1), routed=self.routed())
        for watched in self.processes:
            sample.rss[watched.name], sample.fds[watched.name] = _memory_and_fds(watched.pid())
            sample.tasks[watched.name] = await self._tasks(watched.metrics_url)
        try:
            depths = await self.management.queue_depths(prefix=self.prefix)
        except Exception:  # the management API busy for a moment: a gap, not a failure
            depths = None
        if depths is not None:
            quarantine = f"{self.prefix}.quarantine"
            sample.quarantined = float(depths.get(quarantine, 0))
            sample.queued = float(sum(n for name, n in depths.items() if name != quarantine))
        sample.store_bytes = float(sum(f.stat().st_size for f in self.store_files if f.exists()))
        self.samples.append(sample)
        return sample

    async def _tasks(self, url: str) -> float:
        try:
            answer = await self._http.get(url)
        except httpx.HTTPError:  # the process is down (a restart): no reading
            return math.nan
        return tasks_in(answer.text)

    async def close(self) -> None:
        await self._http.aclose()


def tasks_in(exposition: str) -> float:
    """``vdx_asyncio_tasks`` in a Prometheus text exposition (NaN when absent)."""
    for line in exposition.splitlines():
        if line.startswith("vdx_asyncio_tasks "):
            return float(line.split()[1])
    return math.nan


def _memory_and_fds(pid: int | None) -> tuple[float, float]:
    if pid is None:
        return math.nan, math.nan
    try:
        process = psutil.Process(pid)
        return float(process.memory_info().rss), float(process.num_fds())
    except psutil.Error:  # gone between the pid and the reading
        return math.nan, math.nan


def as_series(samples: list[Sample]) -> Mapping[str, list[float]]:
    """Every measure as one series, named ``<measure> <process>`` or ``<measure>``."""
    series: dict[str, list[float]] = {}
    for sample in samples:
        for measure, values in (("rss", sample.rss), ("fds", sample.fds), ("tasks", sample.tasks)):
            for name, value in values.items():
                series.setdefault(f"{measure} {name}", []).append(value)
        series.setdefault("queued", []).append(sample.queued)
        series.setdefault("quarantined", []).append(sample.quarantined)
        series.setdefault("store", []).append(sample.store_bytes)
        per_envelope = sample.store_bytes / sample.routed if sample.routed else math.nan
        series.setdefault("store per envelope", []).append(per_envelope)
    return series
