"""Checking a received directory version against the running one in another process, so a
running router or adapter goes on working meanwhile (docs/directory.md, "Applying a new
version"): loading both versions and comparing them is seconds of Python at country size,
and a thread doing it holds the interpreter lock the event loop needs.

The other process (spawned: never a fork of a process with threads and an event loop) gets
the running version as its JSON and the received one as it came, at a lower priority
(``nice`` 10), loads both, runs
:func:`~backbone.directory.succession.succession`, and sends back only the verdict: the new
version's id and its problems, or why it could not be loaded."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from backbone.directory.index import Directory
from backbone.directory.loader import Format, parse_directory
from backbone.directory.succession import succession
from backbone.errors import DirectoryError
from backbone.tiers import TierModel

__all__ = ["Verdict", "check_apart"]

# The check yields the CPU to routing: on a machine with few cores, a check at the same
# priority takes a core from the router or the broker and slows routing as much as the
# interpreter lock did. It still gets every idle cycle.
_NICENESS = 10


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the other process found: ``error`` when the version could not be loaded, else
    its id and its problems against the running version (none: it may follow)."""

    version_id: str = ""
    problems: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Running:
    """The running version as the other process rebuilds it: its file as JSON (the fields it
    set, so a version-1 file stays one) and what was given beside the file."""

    data: bytes
    tiers: TierModel
    zone: tzinfo
    base_dir: Path | None
    source: str

    @classmethod
    def of(cls, directory: Directory) -> _Running:
        data = directory.file.model_dump_json(exclude_unset=True).encode()
        return cls(data, directory.tiers, directory.timeline.zone, directory.base_dir, "running")


async def check_apart(
    running: Directory, data: bytes, format: Format, *, source: str, base_dir: Path | None
) -> Verdict:
    """``data`` checked against ``running`` in a new process, which ends with the check
    (versions are rare; a process kept waiting would hold a country in memory). A process
    that dies (killed, out of memory) is a :class:`DirectoryError`."""
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=os.nice, initargs=(_NICENESS,)
    ) as pool:
        try:
            return await loop.run_in_executor(
                pool, _check, _Running.of(running), data, format, source, base_dir
            )
        except BrokenProcessPool as error:
            raise DirectoryError(
                f"{source}: the process checking it ended before its verdict ({error}); refused"
            ) from None


def _check(
    running: _Running, data: bytes, format: Format, source: str, base_dir: Path | None
) -> Verdict:
    """In the other process: both versions loaded, the received one checked as it follows."""
    try:
        before = parse_directory(
            running.data,
            format="json",
            source=running.source,
            base_dir=running.base_dir,
            tiers=running.tiers,
            zone=running.zone,
        )
        after = parse_directory(data, format=format, source=source, base_dir=base_dir)
    except DirectoryError as error:
        return Verdict(error=error.message)
    return Verdict(after.version.id, succession(before, after).problems)
