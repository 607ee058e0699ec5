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
import os
import shutil
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlsplit

import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.markup import escape

from backbone.broker.management import ENV_VAR, ManagementClient
from backbone.broker.provision import provision
from backbone.devtools.demo.display import Display
from backbone.devtools.demo.processes import DemoProcess, ProcessFailedError
from backbone.devtools.demo.scenario import DemoError, Progress
from backbone.devtools.demo.world import DemoWorld, build_world
from backbone.devtools.discovery import discover_broker
from backbone.errors import BackboneError

__all__ = [
    "DemoError",
    "DemoProcess",
    "DemoWorld",
    "Display",
    "ProcessFailedError",
    "Progress",
    "build_world",
    "headline_numbers",
    "management_client",
    "run",
]

START_SECONDS = 60.0


def run(*, keep: bool = False, timeout: float = 90.0) -> None:
    """Run the demo; exit code 1 (:class:`typer.Exit`) when it did not complete.

    ``keep`` leaves the temporary folder (keys, directory, configurations, logs, drop
    folders) in place; ``timeout`` is how long every recipient has to reach status 06."""
    console = Console(highlight=False, soft_wrap=True)
    try:
        endpoint = discover_broker(container=True)
    except BackboneError as error:
        console.print(f"[red]demo failed:[/] {escape(str(error))}")
        raise typer.Exit(1) from error
    try:
        ok = asyncio.run(_demo(console, endpoint.url, endpoint.source, keep, timeout))
    finally:
        endpoint.stop()
    if not ok:
        raise typer.Exit(1)


async def _demo(console: Console, amqp_url: str, source: str, keep: bool, timeout: float) -> bool:
    root = Path(tempfile.mkdtemp(prefix="vdx-demo-"))
    management = management_client(amqp_url)
    world: DemoWorld | None = None
    processes: list[DemoProcess] = []
    try:
        console.print(f"broker: {urlsplit(amqp_url).hostname} ({source})")
        await _check_management(console, management)
        world = build_world(root, amqp_url)
        _describe(console, world)
        await provision(management, world.accounts, world.passwords)
        console.print(f"  ✓ {len(world.accounts)} least-privilege broker users provisioned")
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
        _stop(console, processes)
        if world is not None:
            await _clean_broker(console, management, world)
        if keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def management_client(amqp_url: str) -> ManagementClient:
    """``VDX_MANAGEMENT_URL`` when set, else port 15672 of the broker's host with the
    credentials of the broker URL (guest/guest for the local node)."""
    if os.environ.get(ENV_VAR):
        return ManagementClient.from_env()
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return ManagementClient(
        f"http://{netloc}:15672",
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
    )


async def _check_management(console: Console, management: ManagementClient) -> None:
    try:
        version = await management.version()
    except BackboneError as error:
        raise DemoError(
            f"the demo provisions least-privilege broker users through the management API, "
            f"and it does not answer: {error}"
        ) from None
    console.print(f"  ✓ RabbitMQ {version}, management API at {management.base_url}")


def _describe(console: Console, world: DemoWorld) -> None:
    console.print(
        f"  ✓ development CA and {len(world.directory.agencies)} agency keys in {world.root}"
    )
    for agency in world.directory.agencies:
        tier = world.directory.tier_of(agency.organ_code)
        connection = f"via hub {agency.hub}" if agency.hub else "direct"
        console.print(
            f"      tier {tier.number} {tier.name:<20} {agency.organ_code}  "
            f"{agency.name} ({connection})"
        )
    console.print(f"  ✓ broker names prefixed {world.prefix}.")


async def _start(console: Console, world: DemoWorld, processes: list[DemoProcess]) -> None:
    """The router first (it declares the topology adapters need), then every adapter."""
    router = DemoProcess.router(world.router_config(), world.root / "router.log", world.router_port)
    processes.append(router)
    router.start()
    await router.wait_ready(START_SECONDS)
    console.print(f"  ✓ router running (pid {router.pid}), metrics at {world.metrics_url}")
    adapters = [
        DemoProcess.adapter(
            system, world.adapter_config(system), world.root / f"adapter-{system}.log"
        )
        for system in world.systems()
    ]
    processes.extend(adapters)
    for adapter in adapters:
        adapter.start()
    await asyncio.gather(*(adapter.wait_ready(START_SECONDS) for adapter in adapters))
    console.print(f"  ✓ {len(adapters)} adapters serving: {', '.join(world.systems())}")


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


def _stop(console: Console, processes: list[DemoProcess]) -> None:
    """SIGTERM to the adapters, then the router (it goes last: adapters publish to it)."""
    for process in reversed(processes):
        code = process.stop()
        if code not in (0, None):
            console.print(f"[yellow]the {process.name} process stopped with code {code}[/]")


async def _clean_broker(console: Console, management: ManagementClient, world: DemoWorld) -> None:
    try:
        for spec in world.accounts:
            await management.delete_user(spec.user)
        deleted = await management.delete_prefixed(world.prefix)
    except BackboneError as error:
        console.print(
            f"[yellow]could not clean the broker up: {escape(str(error))}; delete the users "
            f"{world.prefix}-* and every queue and exchange named {world.prefix}.* by hand[/]"
        )
        return
    console.print(
        f"cleaned up: {len(world.accounts)} broker users and {deleted} queues and exchanges "
        f"named {world.prefix}.*"
    )
