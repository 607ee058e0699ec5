"""What ``backbone demo`` and ``backbone sandbox`` both do around their world: check the
broker's management API, provision the accounts, start the router and the adapters as
processes, stop them, and delete from the broker everything the world created.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import typer
from rich.console import Console
from rich.markup import escape

from backbone.broker.management import ENV_VAR, ManagementClient
from backbone.broker.provision import provision
from backbone.devtools.demo.processes import DemoProcess
from backbone.devtools.demo.world import DemoWorld
from backbone.devtools.discovery import discover_broker
from backbone.errors import BackboneError

__all__ = [
    "START_SECONDS",
    "DemoError",
    "check_management",
    "clean_broker",
    "describe_world",
    "management_client",
    "provision_world",
    "run_on_local_broker",
    "start_adapters",
    "start_router",
    "stop_processes",
]

START_SECONDS = 60.0


class DemoError(Exception):
    """The demo (or the sandbox) cannot go on; the message says why."""


Session = Callable[[Console, str, str], Coroutine[Any, Any, bool]]


def run_on_local_broker(what: str, session: Session) -> None:
    """``session(console, amqp_url, source)`` on the broker discovery finds (the local node,
    started if need be, or a container); exit code 1 (:class:`typer.Exit`) when there is
    none or the session returns False."""
    console = Console(highlight=False, soft_wrap=True)
    try:
        endpoint = discover_broker(container=True)
    except BackboneError as error:
        console.print(f"[red]{what} failed:[/] {escape(str(error))}")
        raise typer.Exit(1) from error
    try:
        ok = asyncio.run(session(console, endpoint.url, endpoint.source))
    finally:
        endpoint.stop()
    if not ok:
        raise typer.Exit(1)


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


async def check_management(console: Console, management: ManagementClient) -> None:
    try:
        version = await management.version()
    except BackboneError as error:
        raise DemoError(
            f"least-privilege broker users are provisioned through the management API, "
            f"and it does not answer: {error}"
        ) from None
    console.print(f"  ✓ RabbitMQ {version}, management API at {management.base_url}")


def describe_world(console: Console, world: DemoWorld) -> None:
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


async def provision_world(console: Console, management: ManagementClient, world: DemoWorld) -> None:
    await provision(management, world.accounts, world.passwords)
    console.print(f"  ✓ {len(world.accounts)} least-privilege broker users provisioned")


async def start_router(console: Console, processes: list[DemoProcess], router: DemoProcess) -> None:
    """The router goes first: it declares the topology the adapters need."""
    processes.append(router)
    router.start()
    await router.wait_ready(START_SECONDS)
    console.print(f"  ✓ router running (pid {router.pid})")


async def start_adapters(
    console: Console, processes: list[DemoProcess], adapters: Sequence[DemoProcess]
) -> None:
    processes.extend(adapters)
    for adapter in adapters:
        adapter.start()
    await asyncio.gather(*(adapter.wait_ready(START_SECONDS) for adapter in adapters))
    names = ", ".join(adapter.name.removeprefix("adapter ") for adapter in adapters)
    console.print(f"  ✓ {len(adapters)} adapters serving: {names}")


def stop_processes(console: Console, processes: list[DemoProcess]) -> bool:
    """SIGTERM to the adapters, all at once, then to the router (the first started: it goes
    last, adapters publish to it); False when one stopped with an error."""
    clean = True
    for group in (processes[1:], processes[:1]):
        for process in group:
            process.terminate()
        for process in group:
            code = process.stop()
            # -SIGTERM: ours arrived before it had set its handlers (stopped while starting).
            if code not in (0, None, -signal.SIGTERM):
                console.print(f"[yellow]the {process.name} process stopped with code {code}[/]")
                clean = False
    return clean


async def clean_broker(console: Console, management: ManagementClient, world: DemoWorld) -> bool:
    """Delete the world's broker users and every queue and exchange under its prefix;
    False (and what to delete by hand) when the broker would not."""
    try:
        for spec in world.accounts:
            await management.delete_user(spec.user)
        deleted = await management.delete_prefixed(world.prefix)
    except BackboneError as error:
        console.print(
            f"[yellow]could not clean the broker up: {escape(str(error))}; delete the users "
            f"{world.prefix}-* and every queue and exchange named {world.prefix}.* by hand[/]"
        )
        return False
    console.print(
        f"cleaned up: {len(world.accounts)} broker users and {deleted} queues and exchanges "
        f"named {world.prefix}.*"
    )
    return True
