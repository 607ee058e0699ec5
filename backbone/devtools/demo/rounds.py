"""``backbone demo --observe`` after the demo: the same three documents again, renumbered,
every few seconds, each recipient's clerk answering 03 → 06 as in the demo, so the figures
an operator watches in Prometheus keep moving until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence

from rich.console import Console

from backbone.devtools.demo.processes import DemoProcess
from backbone.devtools.demo.scenario import LETTERS, Letter, Progress
from backbone.devtools.demo.world import DemoWorld

__all__ = ["PAUSE_SECONDS", "keep_flowing"]

PAUSE_SECONDS = 5.0  # between the end of a round and the next
_CHECK_SECONDS = 0.2


async def keep_flowing(
    console: Console,
    world: DemoWorld,
    processes: Sequence[DemoProcess],
    stop: asyncio.Event,
    timeout: float,
) -> None:
    """Rounds until ``stop``; a round late by ``timeout`` seconds is reported and left."""
    console.print(
        f"documents keep flowing, a round every {PAUSE_SECONDS:.0f} s, until Ctrl-C or SIGTERM"
    )
    number = 1
    while not stop.is_set():
        progress = Progress(world, letters=_renumbered(number))
        progress.send_documents()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not progress.done and not stop.is_set() and loop.time() - started < timeout:
            for process in processes:
                process.check_alive()
            progress.refresh()
            progress.answer()
            await _wait(stop, _CHECK_SECONDS)
        if progress.done:
            pairs = len(progress.pairs)
            console.print(
                f"round {number}: {len(progress.letters)} documents, {pairs} recipients at 06 "
                f"in {loop.time() - started:.1f} s"
            )
        elif not stop.is_set():
            console.print(f"[yellow]round {number}: not done in {timeout:.0f} s:[/]")
            for line in progress.missing():
                console.print(f"  {line}")
        _take_away(world)
        number += 1
        await _wait(stop, PAUSE_SECONDS)
    console.print("stopping")


def _renumbered(round_number: int) -> tuple[Letter, ...]:
    return tuple(
        dataclasses.replace(letter, number=letter.number + 1000 * round_number)
        for letter in LETTERS
    )


def _take_away(world: DemoWorld) -> None:
    """What the agencies' software does with what it read: statuses and documents taken out
    of the drop folders (the folders stay: the adapters write into them)."""
    for agency in world.agencies:
        for name in ("status", "inbox", "sent"):
            folder = world.folder(agency.code) / name
            for path in folder.iterdir() if folder.is_dir() else []:
                if path.is_file():
                    path.unlink(missing_ok=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
