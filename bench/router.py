"""The real Router against pre-filled envelopes, run in a subprocess (bench.router_proc)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import CpuMeter
from bench.world import DELIVERY_LIMIT, World
from testkit.store import backend

POLL_SECONDS = 0.02
HERE = Path(__file__).resolve().parent.parent  # the checkout whose router is measured


class RouterProcess:
    """A router replica in a child process; ``peak_rss_kib`` is known after :meth:`stop`."""

    def __init__(
        self,
        world: World,
        store_url: str,
        name: str,
        *,
        source: Path = HERE,
        schema: str | None = None,
    ) -> None:
        self.world = world
        self.store_url = store_url
        self.schema = schema  # PostgreSQL: replicas share one schema
        self.name = name
        self.source = source  # run the backbone of this checkout (bench.compare: another one)
        self.started_at = 0.0  # wall clock just before Router.start
        self.peak_rss_kib: int | None = None
        self.cpu_seconds: float | None = None  # CPU from just before start to the stop
        self._cpu_at_start = 0.0
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        pki = self.world.exchange.pki
        spec = {
            "amqp_url": self.world.exchange.amqp_url,
            "prefix": self.world.names.prefix,
            "directory": str(self.world.directory_file),
            "ca_cert": str(pki.ca.cert_path),
            "crl": str(pki.ca.crl_path),
            "store_url": self.store_url,
            "store_schema": self.schema,
            "delivery_limit": DELIVERY_LIMIT,
        }
        spec_file = self.world.root / f"router-{self.name}.json"
        spec_file.write_text(json.dumps(spec))
        log_file = (self.world.root / f"router-{self.name}.log").open("wb")
        self._process = await asyncio.create_subprocess_exec(
            *self.command(spec_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            cwd=str(self.source),
        )
        log_file.close()
        while True:
            line = await self._read()
            if line["event"] == "starting":
                self.started_at = float(line["t"])
                self._cpu_at_start = float(line["cpu"])
            elif line["event"] == "ready":
                return

    def command(self, spec_file: Path) -> list[str]:
        return [sys.executable, "-m", "bench.router_proc", str(spec_file)]

    @property
    def pid(self) -> int | None:
        """The child's OS pid while it runs (for a :class:`CpuMeter`)."""
        return None if self._process is None else self._process.pid

    async def _read(self) -> dict[str, object]:
        assert self._process is not None
        assert self._process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self._process.stdout.readline(), timeout=60)
            if not raw:
                raise RuntimeError(
                    f"the router process ended (see {self.world.root}/router-{self.name}.log)"
                )
            if raw.startswith(b"{"):  # a profiler in front may print lines of its own
                return dict(json.loads(raw))

    async def stop(self, *, signal_process: bool = True) -> None:
        if self._process is None:
            return
        if signal_process:
            self._process.terminate()
        try:
            while True:
                line = await self._read()
                if line["event"] == "stopped":
                    self.peak_rss_kib = int(str(line.get("VmHWM", 0)))
                    self.cpu_seconds = float(line["cpu"]) - self._cpu_at_start
                    break
        finally:
            await self._process.wait()
            self._process = None


@dataclass(frozen=True, slots=True)
class Arrivals:
    """When envelopes reached the inboxes: the first poll that saw any (and how many it
    saw), and the poll that saw them all (wall clock)."""

    first_at: float
    first_count: int
    last_at: float

    def steady_rate(self, expected: int) -> float:
        """Envelopes per second between the first arrivals and the last: the router's
        rate once running, without its start-up (connect, topology declare)."""
        return (expected - self.first_count) / max(self.last_at - self.first_at, 1e-9)


async def wait_for_depths(
    world: World,
    queues: Sequence[str],
    expected: int,
    *,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> Arrivals:
    """Poll until every queue holds ``expected`` messages."""
    deadline = time.monotonic() + timeout
    seen = 0
    first: tuple[float, int] | None = None
    while True:
        depths = [await world.depth(q) for q in queues]
        now = time.time()
        least = min(depths)
        if first is None and least > 0:
            first = (now, least)
        if progress is not None and least > seen:
            progress(least - seen)
            seen = least
        if least >= expected:
            assert first is not None
            return Arrivals(first[0], first[1], now)
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {depths} of {expected} arrived in {timeout:.0f} s")
        await asyncio.sleep(POLL_SECONDS)


async def measure_router(
    world: World,
    *,
    store: str,
    payload_bytes: int,
    recipients: Sequence[str],
    count: int,
    seal_progress: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    source: Path = HERE,
    broker_pid: int | None = None,
    replicas: int = 1,
) -> dict[str, object]:
    """Pre-fill the inbound queue with ``count`` sealed envelopes (published by the sender's
    broker user), start ``replicas`` routers on one store (``memory``, ``sqlite`` or
    ``postgresql``: a fresh file or schema) sharing the inbound queue, and time until each
    recipient's inbox holds all of them. The time counts from just before the first
    ``Router.start`` (connecting and the idempotent topology declare included) to the poll
    that saw the last envelope; CPU is the replicas' together."""
    names = world.names
    await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
    bodies = []
    for _ in range(count):
        bodies.append(world.seal_router_envelope(recipients, payload_bytes))
        if seal_progress is not None:
            seal_progress(1)
    await world.submit_many(bodies)
    inboxes = world.inboxes(recipients)
    tag = f"{store}-{payload_bytes}-{len(recipients)}-x{replicas}"
    async with backend(store, world.root / f"router-{tag}") as where:
        if replicas > 1:  # the tables made once, so the replicas can start together
            await (await where.open()).close()
        routers = [
            RouterProcess(world, where.url, f"{tag}-{i}", source=source, schema=where.schema)
            for i in range(replicas)
        ]
        broker = CpuMeter(broker_pid)
        broker.start()
        await asyncio.gather(*(router.start() for router in routers))
        try:
            arrivals = await wait_for_depths(
                world, inboxes, count, timeout=max(30.0, count / 20), progress=progress
            )
        except TimeoutError as error:
            log = (world.root / f"router-{tag}-0.log").read_text().splitlines()[-5:]
            raise TimeoutError(f"{error}; router log ends:\n" + "\n".join(log)) from None
        finally:
            broker.stop()
            await asyncio.gather(*(router.stop() for router in routers))
    started_at = min(router.started_at for router in routers)
    elapsed = arrivals.last_at - started_at
    router_cpu = sum(router.cpu_seconds or 0 for router in routers)
    await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
    return {
        "store": store,
        "replicas": replicas,
        "payload_bytes": payload_bytes,
        "recipients": len(recipients),
        "envelope_bytes": len(bodies[0]),
        "envelopes": count,
        "seconds": round(elapsed, 3),
        "startup_seconds": round(arrivals.first_at - started_at, 3),
        "per_s": round(arrivals.steady_rate(count), 1),
        "peak_rss_mb": round(max(router.peak_rss_kib or 0 for router in routers) / 1024, 1),
        # CPU per envelope is steadier than rates on a shared machine (start-up included)
        "cpu_us_per_envelope": round(1e6 * router_cpu / count),
        "broker_cpu_us_per_envelope": broker.per_message_us(count),
    }
