"""``backbone demo``: the whole backbone end to end on the real broker, in one command.

A development PKI and a directory spanning the four tiers and a provincial hub; one
least-privilege broker user per connected system (management API); the router and one
drop-folder adapter per connected system started as real processes; then documents
dropped into outboxes — a commune up to a ministry, the ministry down to the commune and
out across every tier at once — and each recipient's clerk answering 03 → 04 → 05 → 06
through its own outbox while a table follows the statuses arriving at the senders.
Everything it created (processes, broker users, queues, exchanges, files) is removed at
the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.markup import escape

from backbone.devtools.demo.display import Display
from backbone.devtools.demo.lifecycle import (
    DemoError,
    check_management,
    clean_broker,
    describe_world,
    management_client,
    provision_world,
    run_on_local_broker,
    start_adapters,
    start_router,
    stop_processes,
)
from backbone.devtools.demo.processes import DemoProcess, ProcessFailedError
from backbone.devtools.demo.scenario import Progress
from backbone.devtools.demo.world import DemoWorld, build_world
from backbone.errors import BackboneError

__all__ = [
    "DemoError",
    "DemoProcess",
    "DemoWorld",
    "Display",
    "ProcessFailedError",
    "Progress",
    "build_world",
    "check_management",
    "clean_broker",
    "describe_world",
    "headline_numbers",
    "management_client",
    "provision_world",
    "run",
    "run_on_local_broker",
    "start_adapters",
    "start_router",
    "stop_processes",
]


def run(*, keep: bool = False, timeout: float = 90.0) -> None:
    """Run the demo; exit code 1 (:class:`typer.Exit`) when it did not complete.

    ``keep`` leaves the temporary folder (keys, directory, configurations, logs, drop
    folders) in place; ``timeout`` is how long every recipient has to reach status 06."""
    run_on_local_broker(
        "demo", lambda console, url, source: _demo(console, url, source, keep, timeout)
    )


async def _demo(console: Console, amqp_url: str, source: str, keep: bool, timeout: float) -> bool:
    root = Path(tempfile.mkdtemp(prefix="vdx-demo-"))
    management = management_client(amqp_url)
    world: DemoWorld | None = None
    processes: list[DemoProcess] = []
    try:
        console.print(f"broker: {urlsplit(amqp_url).hostname} ({source})")
        await check_management(console, management)
        world = build_world(root, amqp_url)
        describe_world(console, world)
        await provision_world(console, management, world)
        await _start(console, world, processes)
        progress = Progress(world)
        progress.send_documents()
        console.print(f"  ✓ {len(progress.letters)} documents dropped into outboxes")
        finished = await _follow(console, progress, processes, timeout)
        _summary(console, world, finished, keep)
        return finished
    except (BackboneError, DemoError, ProcessFailedError) as error:
        console.print(f"[red]demo failed:[/] {escape(str(error))}")
        return False
    finally:
        stop_processes(console, processes)
        if world is not None:
            await clean_broker(console, management, world)
        if keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _start(console: Console, world: DemoWorld, processes: list[DemoProcess]) -> None:
    router = DemoProcess.router(world.router_config(), world.root / "router.log", world.router_port)
    await start_router(console, processes, router)
    console.print(f"  ✓ metrics at {world.metrics_url}")
    adapters = [
        DemoProcess.adapter(
            system, world.adapter_config(system), world.root / f"adapter-{system}.log"
        )
        for system in world.systems()
    ]
    await start_adapters(console, processes, adapters)


async def _follow(
    console: Console, progress: Progress, processes: list[DemoProcess], timeout: float
) -> bool:
    """Until every recipient reached 06 (True) or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    with Display(console, progress) as display:
        while not progress.done and time.monotonic() < deadline:
            for process in processes:
                process.check_alive()
            display.update(progress.refresh())
            progress.answer()
            await asyncio.sleep(0.1)
    if not progress.done:
        console.print(f"[red]not every recipient reached status 06 within {timeout:.0f} s:[/]")
        for line in progress.missing():
            console.print(f"  {line}")
    return progress.done


def _summary(console: Console, world: DemoWorld, finished: bool, keep: bool) -> None:
    if finished:
        console.print("[green]every recipient reached status 06[/]")
    console.print(f"metrics: {world.metrics_url} (served while the router runs)")
    with contextlib.suppress(OSError):
        for line in headline_numbers(_get(world.metrics_url)):
            console.print(f"  {line}")
    where = "kept" if keep else "removed at exit; --keep keeps them"
    console.print(f"drop folders: {world.root / 'folders'}/<organ code> ({where})")
    console.print(f"logs and configuration: {world.root} ({where})")


def headline_numbers(metrics: str) -> list[str]:
    """A few lines from the router's Prometheus text."""
    by: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            labels = sample.labels
            label = labels.get("kind") or labels.get("tier") or labels.get("code") or ""
            by[sample.name][label] += sample.value
    routed = by["vdx_envelopes_routed_total"]
    statuses = by["vdx_statuses_total"]
    deliveries = by["vdx_deliveries_total"]
    count = sum(by["vdx_routing_seconds_count"].values())
    mean = sum(by["vdx_routing_seconds_sum"].values()) / count if count else 0.0
    return [
        "envelopes routed: " + _counts(routed),
        "statuses relayed by code: " + _counts(statuses),
        "deliveries (documents and statuses) by recipient tier: " + _counts(deliveries),
        f"rejected: {int(sum(by['vdx_envelopes_rejected_total'].values()))}; "
        f"mean routing time {mean * 1000:.1f} ms",
    ]


def _counts(values: dict[str, float]) -> str:
    return ", ".join(f"{label} {int(n)}" for label, n in sorted(values.items()) if label) or "none"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own http URL
        return str(answer.read().decode("utf-8"))
