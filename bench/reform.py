"""Issue 17's reform step: the synthetic country's 2025 reform checked and applied to a running
router, and the router's rate while it takes the new version up, beside its normal rate.

    python -m bench.reform [--provinces N] [--envelopes N]

A router (``bench.router_proc``, SQLite) runs on the country (``provinces``, without the
ministries, whose 211 direct agencies would add 420 quorum queues and change nothing in the
reform; version 2, revision 1); the reform (``backbone.directory.reform``, revision 2) is checked as
``backbone directory apply`` checks it (both versions loaded, then ``succession``) and
published on the broker as it publishes it. Two batches of envelopes from the Government
Office to a province that keeps its code and inbox through the reform: the first gives the
normal rate, the second has the version published once it is queued, and the rate between the
publish and the router's ``router.directory_applied`` is the rate while a version is applied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from backbone.broker.directory_publish import publish_version
from backbone.broker.management import ManagementClient
from backbone.directory import Directory, dump_directory, load_directory, parse_directory
from backbone.directory.reform import reform_directory
from backbone.directory.succession import succession
from bench.router import POLL_SECONDS, RouterProcess
from bench.world import SENDER, World, broker_url
from testkit import backend
from testkit.country import country_directory

PAYLOAD_BYTES = 4096
APPLIED = b"router.directory_applied"  # the router's log event once the version is in use


class Sample(NamedTuple):
    """One poll: wall clock and the messages in the recipient's inbox."""

    t: float
    depth: int


def window_rate(samples: Sequence[Sample], start: float, end: float) -> float | None:
    """Arrivals per second from ``start`` to ``end``: between the last poll at or before
    ``start`` and the first at or after ``end``; ``None`` without polls on both sides."""
    before = [s for s in samples if s.t <= start]
    after = [s for s in samples if s.t >= end]
    if not before or not after or after[0].t <= before[-1].t:
        return None
    first, last = before[-1], after[0]
    return (last.depth - first.depth) / (last.t - first.t)


def depth_at(samples: Sequence[Sample], at: float) -> int:
    """The inbox's depth at the first poll at or after ``at`` (the last poll if none)."""
    return next((s.depth for s in samples if s.t >= at), samples[-1].depth)


def rates_summary(normal_per_s: float | None, during_per_s: float | None) -> dict[str, Any]:
    """The two rates, rounded, and their ratio (during ÷ normal; ``None`` if either is)."""
    ratio = None
    if normal_per_s and during_per_s is not None:
        ratio = round(during_per_s / normal_per_s, 2)
    return {
        "normal_per_s": None if normal_per_s is None else round(normal_per_s, 1),
        "during_apply_per_s": None if during_per_s is None else round(during_per_s, 1),
        "during_over_normal": ratio,
    }


class Poller:
    """Polls the inbox's depth and the router's log until told what to wait for."""

    def __init__(self, world: World, inbox: str, log: Path) -> None:
        self.world = world
        self.inbox = inbox
        self.log = log
        self.samples: list[Sample] = []
        self.applied_at: float | None = None
        self._read = 0

    async def poll(self) -> Sample:
        """One sample now (a window starts with one)."""
        sample = Sample(time.time(), await self.world.depth(self.inbox))
        self.samples.append(sample)
        if self.applied_at is None and self._log_says_applied():
            self.applied_at = sample.t
        return sample

    async def until(self, depth: int, *, applied: bool = False, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sample = await self.poll()
            if sample.depth >= depth and (not applied or self.applied_at is not None):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{sample.depth} of {depth} envelopes arrived, version "
                    f"{'applied' if self.applied_at else 'not applied'}, in {timeout:.0f} s; "
                    f"see {self.log}"
                )
            await asyncio.sleep(POLL_SECONDS)

    def _log_says_applied(self) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._read)
            text = log.read()
        # a line cut at the end is read again next time
        complete = text.rfind(b"\n") + 1
        self._read += complete
        return APPLIED in text[:complete]


def _running_version(root: Path) -> Callable[[Directory], Path]:
    def write(directory: Directory) -> Path:
        path = root / "running.json"
        dump_directory(directory.file.model_copy(update={"revision": 1}), path)
        return path

    return write


async def measure_reform(
    amqp_url: str,
    root: Path,
    *,
    provinces: int,
    envelopes: int,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Set up the country's exchange (fresh prefix, removed afterwards), then measure."""
    root.mkdir(parents=True, exist_ok=True)
    progress(f"reform: the country of {provinces} provinces on the broker")
    world = await World.create(
        amqp_url,
        root,
        directory=partial(country_directory, provinces=provinces, ministries=False),
        directory_file=_running_version(root),
    )
    try:
        return await _measure(world, root, provinces, envelopes, progress)
    finally:
        await world.close()
        await ManagementClient.from_env().delete_prefixed(world.names.prefix)


async def _measure(
    world: World, root: Path, provinces: int, envelopes: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    running = world.directory_file
    started = time.perf_counter()
    reformed = reform_directory(load_directory(running).file, seed=3)
    new = root / "reform.json"
    dump_directory(reformed.file, new)
    reform_seconds = time.perf_counter() - started

    # The check `backbone directory apply` makes before it publishes anything.
    started = time.perf_counter()
    before = load_directory(running)
    data = new.read_bytes()
    after = parse_directory(data, format="json", source=str(new), base_dir=root)
    loaded = time.perf_counter()
    result = succession(before, after)
    checked = time.perf_counter()
    if result.problems:
        raise RuntimeError(f"the reform does not follow the running version: {result.problems}")

    keeper = next(k for k, closed in reformed.summary.merged_provinces.items() if closed)
    inbox = world.exchange.inbox_of(keeper)
    if world.names.inbox_queue(after.serving_system(keeper).system_id) != inbox:
        raise RuntimeError(f"{keeper} changes inbox in the reform; pick a province that keeps it")
    progress(f"reform: sealing 2 x {envelopes:,} envelopes {SENDER} -> {keeper}")
    batches = [
        [world.seal_router_envelope([keeper], PAYLOAD_BYTES) for _ in range(envelopes)]
        for _ in range(2)
    ]
    async with backend("sqlite", root / "router-reform") as where:
        router = RouterProcess(world, where.url, "reform")
        await router.start()
        poller = Poller(world, inbox, root / "router-reform.log")
        try:
            progress("reform: the normal rate")
            await world.submit_many(batches[0])
            queued = (await poller.poll()).t
            await poller.until(envelopes)
            normal = window_rate(poller.samples, queued, poller.samples[-1].t)

            progress("reform: the rate while the version is applied")
            await world.submit_many(batches[1])
            publish_at = (await poller.poll()).t
            await publish_version(
                world.exchange.amqp_url, world.names, data, "json", after.version.id
            )
            published = time.time()
            await poller.until(2 * envelopes, applied=True)
        finally:
            await router.stop()
    applied_at = poller.applied_at
    assert applied_at is not None
    during = window_rate(poller.samples, publish_at, applied_at)
    return {
        "provinces": provinces,
        "agencies_before": len(before),
        "agencies_after": len(after),
        "file_bytes": len(data),
        "reform_seconds": round(reform_seconds, 3),
        "load_seconds": round(loaded - started, 3),
        "succession_seconds": round(checked - loaded, 3),
        "check_seconds": round(checked - started, 3),
        "publish_seconds": round(published - publish_at, 3),
        "taken_up_seconds": round(applied_at - publish_at, 3),
        "envelopes": envelopes,
        # envelopes still to arrive when the router took the version up: 0 means the
        # backlog ran out during the window and the rate during it is a lower bound
        "backlog_at_take_up": 2 * envelopes - depth_at(poller.samples, applied_at),
        **rates_summary(normal, during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reform", description=__doc__)
    parser.add_argument("--provinces", type=int, default=63)
    parser.add_argument("--envelopes", type=int, default=3000, help="per batch (two batches)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vdx-bench-reform-") as tmp:
        results = asyncio.run(
            measure_reform(
                broker_url(),
                Path(tmp),
                provinces=args.provinces,
                envelopes=args.envelopes,
                progress=print,
            )
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
