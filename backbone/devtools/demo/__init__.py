"""``backbone demo``: the whole backbone end to end on the real broker, in one command.

A development PKI and a directory spanning the four tiers and a provincial hub; one
least-privilege broker user per connected system (management API); the router and one
drop-folder adapter per connected system started as real processes; then documents
dropped into outboxes — a commune up to a ministry, the ministry down to the commune and
out across every tier at once — and each recipient's clerk answering 03 → 04 → 05 → 06
through its own outbox while a table follows the statuses arriving at the senders.
Everything it created (processes, broker users, queues, exchanges, files) is removed at
the end, whatever happened.

With ``observe``, a real Prometheus (and Alertmanager, when installed) runs beside it
(observe.py): the adapters serve /metrics too, and once the demo is through the documents
keep flowing in rounds (rounds.py) until Ctrl-C or SIGTERM, so the figures move.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import typer
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
from backbone.devtools.demo.observe import (
    PROMETHEUS,
    ObserveError,
    Server,
    installed,
    start_observing,
)
from backbone.devtools.demo.processes import DemoProcess, ProcessFailedError
from backbone.devtools.demo.rounds import keep_flowing
from backbone.devtools.demo.scenario import Progress
from backbone.devtools.demo.world import DemoWorld, build_world, free_port
from backbone.errors import BackboneError

__all__ = [
    "DemoError",
    "DemoProcess",
    "DemoWorld",
    "Display",
    "ObserveError",
    "ProcessFailedError",
    "Progress",
    "Server",
    "build_world",
    "check_management",
    "clean_broker",
    "describe_world",
    "free_port",
    "headline_numbers",
    "installed",
    "keep_flowing",
    "management_client",
    "provision_world",
    "run",
    "run_on_local_broker",
    "start_adapters",
    "start_observing",
    "start_router",
    "stop_processes",
]


def run(*, keep: bool = False, timeout: float = 90.0, observe: bool = False) -> None:
    """Run the demo; exit code 1 (:class:`typer.Exit`) when it did not complete.

    ``keep`` leaves the temporary folder (keys, directory, configurations, logs, drop
    folders) in place; ``timeout`` is how long every recipient has to reach status 06.
    ``observe`` runs Prometheus beside it and keeps it all up until Ctrl-C or SIGTERM."""
    if observe:
        try:
            installed(*PROMETHEUS)
        except ObserveError as error:
            typer.echo(f"error: --observe: {error}", err=True)
            raise typer.Exit(1) from None
    run_on_local_broker(
        "demo", lambda console, url, source: _demo(console, url, source, keep, timeout, observe)
    )


async def _demo(
    console: Console, amqp_url: str, source: str, keep: bool, timeout: float, observe: bool
) -> bool:
    stop = asyncio.Event()
    if observe:  # Ctrl-C and SIGTERM end the rounds; the clean-up below runs as ever
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    root = Path(tempfile.mkdtemp(prefix="vdx-demo-"))
    management = management_client(amqp_url)
    world: DemoWorld | None = None
    processes: list[DemoProcess] = []
    servers: list[Server] = []
    try:
        console.print(f"broker: {urlsplit(amqp_url).hostname} ({source})")
        await check_management(console, management)
        world = build_world(root, amqp_url)
        describe_world(console, world)
        await provision_world(console, management, world)
        adapter_ports = [free_port() for _ in world.systems()] if observe else []
        await _start(console, world, processes, adapter_ports)
        if observe:
            await start_observing(console, world, adapter_ports, servers)
        progress = Progress(world)
        progress.send_documents()
        console.print(f"  ✓ {len(progress.letters)} documents dropped into outboxes")
        finished = await _follow(console, progress, processes, timeout, stop)
        _summary(console, world, finished, keep)
        if observe and finished:
            await keep_flowing(console, world, processes, stop, timeout)
        # Stopped by the operator before the demo was through is no failure.
        return finished or stop.is_set()
    except (BackboneError, DemoError, ProcessFailedError, ObserveError) as error:
        console.print(f"[red]demo failed:[/] {escape(str(error))}")
        return False
    finally:
        for server in servers:
            server.stop()
        stop_processes(console, processes)
        if world is not None:
            await clean_broker(console, management, world)
        if keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _start(
    console: Console, world: DemoWorld, processes: list[DemoProcess], adapter_ports: list[int]
) -> None:
    """The router, then the adapters (serving /metrics on ``adapter_ports`` when given)."""
    router = DemoProcess.router(world.router_config(), world.root / "router.log", world.router_port)
    await start_router(console, processes, router)
    console.print(f"  ✓ metrics at {world.metrics_url}")
    ports: list[int | None] = [*adapter_ports] or [None] * len(world.systems())
    adapters = [
        DemoProcess.adapter(
            system,
            world.adapter_config(system, http_port=port),
            world.root / f"adapter-{system}.log",
        )
        for system, port in zip(world.systems(), ports, strict=True)
    ]
    await start_adapters(console, processes, adapters)


async def _follow(
    console: Console,
    progress: Progress,
    processes: list[DemoProcess],
    timeout: float,
    stop: asyncio.Event,
) -> bool:
    """Until every recipient reached 06 (True), ``timeout`` passed or ``stop`` (False)."""
    deadline = time.monotonic() + timeout
    with Display(console, progress) as display:
        while not progress.done and time.monotonic() < deadline and not stop.is_set():
            for process in processes:
                process.check_alive()
            display.update(progress.refresh())
            progress.answer()
            await asyncio.sleep(0.1)
    if not progress.done and not stop.is_set():
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
