"""Progress while the benchmark runs: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter:
    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._bars = (
            Progress(
                TextColumn("{task.description:<34}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            if self.tty
            else None
        )
        self._tasks: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._done: set[str] = set()

    def __enter__(self) -> Reporter:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bars is not None:
            self._bars.stop()

    def note(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text)
        else:
            print(f"[bench] {text}", flush=True)

    def update(self, name: str, done: int, total: int) -> None:
        """``done`` of ``total`` for the step ``name`` (created on first use)."""
        if name not in self._totals:
            self._totals[name] = total
            self._started[name] = time.perf_counter()
            if self._bars is not None:
                self._tasks[name] = self._bars.add_task(name, total=total)
            else:
                print(f"[bench] {name}: 0/{total}", flush=True)
        if self._bars is not None:
            self._bars.update(self._tasks[name], completed=done, total=total)
        elif done >= total and name not in self._done:
            self._done.add(name)
            took = time.perf_counter() - self._started[name]
            print(f"[bench] {name}: {done}/{total} in {took:.1f} s", flush=True)

    def counter(self, name: str, total: int):
        """A callable advancing ``name`` by its argument."""
        state = {"done": 0}
        self.update(name, 0, total)

        def advance(step: int = 1) -> None:
            state["done"] += step
            self.update(name, min(state["done"], total), total)

        return advance
