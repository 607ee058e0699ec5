"""Where a large document's seconds go inside one adapter process (bench/large.py).

A :class:`Phases` wraps named functions of the production modules, in the bench's own
process only (bench.sender_proc, bench.recipient_proc), and adds up the wall seconds each
took, with the wall clock of the first call's start and of the last call's end: the
production code carries no timing of its own. Functions run on worker threads
(``asyncio.to_thread``) are looked up in their module when called, so wrapping the module's
attribute is enough.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Phases"]


@dataclass(slots=True)
class _Phase:
    seconds: float = 0.0
    calls: int = 0
    first: float | None = None  # wall clock (time.time) of the first call's start
    last: float | None = None  # wall clock of the last call's end


class Phases:
    def __init__(self) -> None:
        self._phases: dict[str, _Phase] = {}
        self._lock = threading.Lock()

    def wrap(
        self, owner: Any, name: str, label: str, *, when: Callable[..., bool] | None = None
    ) -> None:
        """Time ``owner.name`` (a module's function or a class's method) under ``label``;
        ``when`` (given the call's arguments) picks the calls that count."""
        original = getattr(owner, name)
        phases = self

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                if when is not None and not when(*args, **kwargs):
                    return await original(*args, **kwargs)
                start, wall = time.perf_counter(), time.time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    phases._add(label, time.perf_counter() - start, wall)

            setattr(owner, name, timed_async)
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                if when is not None and not when(*args, **kwargs):
                    return original(*args, **kwargs)
                start, wall = time.perf_counter(), time.time()
                try:
                    return original(*args, **kwargs)
                finally:
                    phases._add(label, time.perf_counter() - start, wall)

            setattr(owner, name, timed)

    def _add(self, label: str, seconds: float, started: float) -> None:
        with self._lock:
            phase = self._phases.setdefault(label, _Phase())
            phase.seconds += seconds
            phase.calls += 1
            if phase.first is None:
                phase.first = started
            phase.last = time.time()

    def report(self) -> dict[str, dict[str, float | int | None]]:
        """Each phase's summed seconds, calls, and first start / last end (wall clock)."""
        with self._lock:
            return {
                label: {
                    "seconds": round(phase.seconds, 3),
                    "calls": phase.calls,
                    "first": phase.first,
                    "last": phase.last,
                }
                for label, phase in self._phases.items()
            }
