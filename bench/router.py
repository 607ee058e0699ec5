"""The real Router against pre-filled envelopes, run in a subprocess (bench.router_proc)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.world import DELIVERY_LIMIT, World

POLL_SECONDS = 0.02


class RouterProcess:
    """A router replica in a child process; ``peak_rss_kib`` is known after :meth:`stop`."""

    def __init__(self, world: World, store_url: str, name: str) -> None:
        self.world = world
        self.store_url = store_url
        self.name = name
        self.started_at = 0.0  # wall clock just before Router.start
        self.peak_rss_kib: int | None = None
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
            "delivery_limit": DELIVERY_LIMIT,
        }
        spec_file = self.world.root / f"router-{self.name}.json"
        spec_file.write_text(json.dumps(spec))
        log_file = (self.world.root / f"router-{self.name}.log").open("wb")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.router_proc",
            str(spec_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        log_file.close()
        while True:
            line = await self._read()
            if line["event"] == "starting":
                self.started_at = float(line["t"])
            elif line["event"] == "ready":
                return

    async def _read(self) -> dict[str, object]:
        assert self._process is not None
        assert self._process.stdout is not None
        raw = await asyncio.wait_for(self._process.stdout.readline(), timeout=60)
        if not raw:
            raise RuntimeError(
                f"the router process ended (see {self.world.root}/router-{self.name}.log)"
            )
        return dict(json.loads(raw))

    async def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            while True:
                line = await self._read()
                if line["event"] == "stopped":
                    self.peak_rss_kib = int(str(line.get("VmHWM", 0)))
                    break
        finally:
            await self._process.wait()
            self._process = None


async def wait_for_depths(
    world: World,
    queues: Sequence[str],
    expected: int,
    *,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Poll until every queue holds ``expected`` messages; the wall clock when they did."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        depths = [await world.depth(q) for q in queues]
        least = min(depths)
        if progress is not None and least > seen:
            progress(least - seen)
            seen = least
        if least >= expected:
            return time.time()
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
) -> dict[str, object]:
    """Pre-fill the inbound queue with ``count`` sealed envelopes (published by the sender's
    broker user), start a router, and time until each recipient's inbox holds all of them.
    The time counts from just before ``Router.start`` (connecting and the idempotent topology
    declare included) to the poll that saw the last envelope."""
    names = world.names
    await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
    bodies = []
    for _ in range(count):
        bodies.append(world.seal_router_envelope(recipients, payload_bytes))
        if seal_progress is not None:
            seal_progress(1)
    await world.submit_many(bodies)
    inboxes = world.inboxes(recipients)
    tag = f"{store}-{payload_bytes}-{len(recipients)}"
    store_url = (
        "memory://"
        if store == "memory"
        else f"sqlite+aiosqlite:///{world.root / f'router-{tag}.db'}"
    )
    router = RouterProcess(world, store_url, tag)
    await router.start()
    try:
        finished = await wait_for_depths(
            world, inboxes, count, timeout=max(30.0, count / 20), progress=progress
        )
    except TimeoutError as error:
        log = (world.root / f"router-{tag}.log").read_text().splitlines()[-5:]
        raise TimeoutError(f"{error}; router log ends:\n" + "\n".join(log)) from None
    finally:
        await router.stop()
    elapsed = finished - router.started_at
    await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
    return {
        "store": store,
        "payload_bytes": payload_bytes,
        "recipients": len(recipients),
        "envelope_bytes": len(bodies[0]),
        "envelopes": count,
        "seconds": round(elapsed, 3),
        "per_s": round(count / elapsed, 1),
        "peak_rss_mb": round((router.peak_rss_kib or 0) / 1024, 1),
    }
