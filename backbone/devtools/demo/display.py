"""How the demo shows progress: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from backbone.devtools.demo.scenario import FLOW, Pair, Progress
from backbone.devtools.demo.world import NAMES

__all__ = ["Display", "status_table"]

_LABELS = {"01": "arrived", "03": "accepted", "04": "assigned", "05": "processing", "06": "done"}


def status_table(progress: Progress, elapsed: float) -> Table:
    """One row per document and recipient, one column per status."""
    table = Table(title=f"Statuses back at the senders ({elapsed:4.1f} s)", title_justify="left")
    table.add_column("document")
    table.add_column("from")
    table.add_column("to")
    for code in FLOW:
        table.add_column(f"{code}\n{_LABELS[code]}", justify="center")
    for pair in progress.pairs:
        seen = progress.seen.get(pair, [])
        waiting = next((code for code in FLOW if code not in seen), None)
        cells = [
            "[green]✓[/]" if code in seen else "[yellow]…[/]" if code == waiting else ""
            for code in FLOW
        ]
        letter = pair.letter
        table.add_row(
            f"{letter.label} {letter.number}/{letter.notation}",
            letter.sender,
            f"{pair.recipient} {NAMES[pair.recipient]}",
            *cells,
        )
    return table


class Display:
    """``with Display(console, progress): … display.update(new)``: a ``rich`` live table
    when the console is a terminal, one line per status that arrives when it is not."""

    def __init__(self, console: Console, progress: Progress) -> None:
        self.console = console
        self.progress = progress
        self.started = time.monotonic()
        self._live = (
            Live(console=console, refresh_per_second=8, transient=False)
            if console.is_terminal
            else None
        )

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.__enter__()
            self._redraw()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._redraw()
            self._live.__exit__(kind, error, trace)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, new: list[tuple[Pair, str]]) -> None:
        if self._live is not None:
            self._redraw()
            return
        for pair, code in new:
            self.console.print(
                f"[{self.elapsed:5.1f} s] {pair.letter.label}: {pair.letter.document_id} "
                f"→ {pair.recipient}: {code} {_LABELS.get(code, '')}",
                highlight=False,
                soft_wrap=True,
            )

    def _redraw(self) -> None:
        assert self._live is not None
        self._live.update(status_table(self.progress, self.elapsed), refresh=True)
