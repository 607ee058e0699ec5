"""``python -m bench.profile [--party router|recipient] [--store URL] [--count N]``: where
the router's (or the recipient adapter's) time goes.

Pre-fills the inbound queue like the benchmark's router run, starts the same router
subprocess under py-spy (sampling the threads holding the GIL), waits until every
envelope reached its inbox, and prints the functions holding the most samples: inclusive
(anywhere on the stack) and self (top of the stack). The raw collapsed stacks are kept
(``--out``) for a flame graph (e.g. speedscope.app or inferno).

``--party recipient``: the envelopes' edXML is XML-signed, the router runs unprofiled until
they are all in the recipient's inbox, then the recipient's adapter in a process of its own
(``bench.recipient_proc``, as ``make bench`` runs it) drains them under py-spy; its CPU per
document (from its start to the last item, imports and connecting excluded) is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

from backbone.broker.management import ManagementClient
from bench.__main__ import broker_url
from bench.latency import start_recipient
from bench.router import RouterProcess, wait_for_depths
from bench.world import ONE_RECIPIENT, World
from testkit.deployment import Deployment


def summarize(raw: Path, top: int) -> str:
    """Inclusive and self sample shares per function from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"\n{title}:")
        lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "function (path/to/module.py:line)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})"


class ProfiledRouter(RouterProcess):
    """The benchmark's router subprocess, started under ``py-spy record``."""

    def __init__(self, world: World, store_url: str, raw: Path) -> None:
        super().__init__(world, store_url, "profile")
        self.raw = raw

    def command(self, spec_file: Path) -> list[str]:
        return [*_py_spy(self.raw), *super().command(spec_file)]

    async def stop(self) -> None:
        # py-spy forwards nothing: signal the router itself (py-spy's only child).
        assert self._process is not None
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGTERM)
        await super().stop(signal_process=False)


def _py_spy(raw: Path) -> list[str]:
    """py-spy sampling the threads holding the GIL, writing collapsed stacks to ``raw``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return [
        str(py_spy),
        "record",
        "--format",
        "raw",
        "--threads",
        "--gil",
        "--rate",
        "250",
        "--output",
        str(raw),
        "--",
    ]


async def profile_recipient(world: World, count: int, raw: Path) -> float:
    """The recipient's adapter (``bench.recipient_proc``) under py-spy until it has handed
    out ``count`` items; its CPU µs per document."""
    config = Deployment.without_router(world.exchange, world.root).config(ONE_RECIPIENT[0])
    process = await start_recipient(world, config, wrapper=_py_spy(raw))
    assert process.stdout is not None
    taken = 0
    while taken < count:  # py-spy writes lines of its own there too
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        if not line:
            raise RuntimeError(f"the recipient process ended (see {world.root}/recipient.log)")
        taken += line.startswith(b'{"e"')
    # py-spy forwards nothing: signal the recipient itself (py-spy's only child).
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for pid in children.read_text().split():
        os.kill(int(pid), signal.SIGTERM)
    rest, _ = await process.communicate()
    stopped = [
        json.loads(line) for line in rest.splitlines() if line.startswith(b'{"event": "stopped"')
    ]
    return 1e6 * float(stopped[0]["cpu"]) / count


async def main(party: str, store: str, count: int, out: Path, top: int) -> None:
    recipient = party == "recipient"
    with tempfile.TemporaryDirectory(prefix="vdx-profile-") as tmp:
        world = await World.create(broker_url(), Path(tmp))
        try:
            names = world.names
            bodies = [
                world.seal_router_envelope(ONE_RECIPIENT, 4096, xml_signed=recipient)
                for _ in range(count)
            ]
            await world.submit_many(bodies)
            store_url = store.replace("{tmp}", tmp)
            router = (
                RouterProcess(world, store_url, "profile")
                if recipient
                else ProfiledRouter(world, store_url, out)
            )
            await router.start()
            try:
                await wait_for_depths(world, world.inboxes(ONE_RECIPIENT), count, timeout=120)
            finally:
                await router.stop()
            if recipient:
                cpu_us = await profile_recipient(world, count, out)
                print(f"recipient adapter: {cpu_us:.0f} µs of CPU per document ({count})")
            await world.purge(names.inbound_queue, *world.all_inboxes_and_events())
        finally:
            await world.close()
            await ManagementClient.from_env().delete_prefixed(world.names.prefix)
    print(summarize(out, top))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--party", choices=("router", "recipient"), default="router")
    parser.add_argument("--store", default="sqlite+aiosqlite:///{tmp}/router.db")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("bench/profile.raw.txt"))
    parser.add_argument("--top", type=int, default=40)
    arguments = parser.parse_args()
    asyncio.run(
        main(arguments.party, arguments.store, arguments.count, arguments.out, arguments.top)
    )
