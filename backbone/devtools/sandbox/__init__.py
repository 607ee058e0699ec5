"""``backbone sandbox --out DIR``: what an integration team points its software at before it
connects to the real axis.

On the local broker (as ``backbone demo`` finds it), with a development PKI: the router with
tracking, and for each connected system an adapter serving the axis' API (its gateway) on a
free loopback port — five agencies across the four tiers, two of them behind a hub whose
gateway acts for both under one ``systemid``. ``DIR/sandbox.json`` lists each agency's
endpoint, ``systemid``, secret and tracking token, and the tracking URL; it is written once
everything answers, so its appearance means "ready". It runs until Ctrl-C or SIGTERM, then
stops the processes, deletes its broker users, queues and exchanges, its temporary folder
(keys, configurations, logs, state; ``--keep`` keeps it), and what it wrote into ``DIR``
(``sandbox.json`` and the secret files: they describe gateways that are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

from backbone.broker.management import ManagementClient
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
from backbone.devtools.demo.world import DemoWorld, build_world
from backbone.devtools.sandbox.world import AGENCIES, SANDBOX_HUB, Sandbox, plan_sandbox, table
from backbone.errors import BackboneError

__all__ = ["Sandbox", "plan_sandbox", "run", "table"]

_CHECK_SECONDS = 0.5  # how often the child processes are checked while serving


def run(out: Path, *, keep: bool = False) -> None:
    """Run the sandbox until a signal; exit code 1 (:class:`typer.Exit`) when it could not
    start, a process failed, or what it created could not all be removed."""
    run_on_local_broker(
        "sandbox", lambda console, url, source: _sandbox(console, url, source, out, keep)
    )


async def _sandbox(console: Console, amqp_url: str, source: str, out: Path, keep: bool) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    root = Path(tempfile.mkdtemp(prefix="vdx-sandbox-"))
    created_out = not out.exists()
    management = management_client(amqp_url)
    world: DemoWorld | None = None
    sandbox: Sandbox | None = None
    processes: list[DemoProcess] = []
    ok = True
    try:
        console.print(f"broker: {urlsplit(amqp_url).hostname} ({source})")
        await check_management(console, management)
        world = build_world(root, amqp_url, agencies=AGENCIES, hub=SANDBOX_HUB, label="sandbox")
        describe_world(console, world)
        sandbox = plan_sandbox(world, out)
        started = _start(console, management, sandbox, processes)
        if await _unless_stopped(stop, started):
            _announce(console, sandbox, keep)
            await _serve(stop, processes)
        console.print("stopping")
    except (BackboneError, DemoError, ProcessFailedError, OSError) as error:
        console.print(f"[red]sandbox failed:[/] {escape(str(error))}")
        ok = False
    finally:
        ok = stop_processes(console, processes) and ok
        if world is not None:
            ok = await clean_broker(console, management, world) and ok
        if sandbox is not None:
            sandbox.remove_files()
        if created_out:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty: whatever else was put there stays
        if keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return ok


async def _start(
    console: Console,
    management: ManagementClient,
    sandbox: Sandbox,
    processes: list[DemoProcess],
) -> None:
    world = sandbox.world
    await provision_world(console, management, world)
    router_config = sandbox.router_config()
    router = DemoProcess.router(router_config, world.root / "router.log", world.router_port)
    await start_router(console, processes, router)
    adapters = [
        DemoProcess.adapter(
            system,
            sandbox.adapter_config(system),
            world.root / f"adapter-{system}.log",
            ready_event="gateway.serving",
        )
        for system in world.systems()
    ]
    await start_adapters(console, processes, adapters)


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it): True when it finished."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        task.result()  # its exception, if it failed
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


def _announce(console: Console, sandbox: Sandbox, keep: bool) -> None:
    written = sandbox.write()
    console.print()
    for line in table(sandbox):
        console.print(escape(line))
    console.print()
    where = "kept" if keep else "removed at exit; --keep keeps them"
    console.print(f"logs: {sandbox.world.root}/*.log ({where})")
    console.print(f"written: {written} (removed at exit, with the secret files beside it)")
    console.print("serving until Ctrl-C or SIGTERM")


async def _serve(stop: asyncio.Event, processes: list[DemoProcess]) -> None:
    """Until ``stop``; :class:`ProcessFailedError` when a process exits before."""
    while not stop.is_set():
        for process in processes:
            process.check_alive()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _CHECK_SECONDS)
