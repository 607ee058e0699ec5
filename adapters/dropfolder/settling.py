"""Which outbox files are finished: document software either writes ``x.edxml.tmp`` and
renames it (the rename rule), or writes ``x.edxml`` in place. A file is taken only once its
size and modification time have stayed the same for ``settle_seconds`` as seen by the
adapter (its own monotonic clock: a file server's clock may be off), so a file written in
place with pauses is not taken half-written. ``settle_seconds = 0`` trusts the rename rule
alone and takes a file at first sight."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["IN_PROGRESS_SUFFIXES", "OUTGOING_SUFFIX", "Settling", "name_kind"]

OUTGOING_SUFFIX = ".edxml"
IN_PROGRESS_SUFFIXES = (".tmp", ".part")


def name_kind(name: str) -> str:
    """``"document"`` (taken, any case of ``.edxml``), ``"in-progress"`` (a dot file, or a
    ``.tmp``/``.part`` name: left alone while the software writes it) or ``"other"`` (never
    taken; reported once)."""
    lower = name.lower()
    if name.startswith(".") or lower.endswith(IN_PROGRESS_SUFFIXES):
        return "in-progress"
    if lower.endswith(OUTGOING_SUFFIX) and len(name) > len(OUTGOING_SUFFIX):
        return "document"
    return "other"


class Settling:
    """Remembers each outbox file's last (size, mtime) and since when it has not changed."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._seen: dict[Path, tuple[int, int, float]] = {}

    def settled(self, path: Path, size: int, mtime_ns: int) -> bool:
        if self.seconds <= 0:
            return True
        now = self._clock()
        seen = self._seen.get(path)
        if seen is None or seen[:2] != (size, mtime_ns):
            self._seen[path] = (size, mtime_ns, now)
            return False
        return now - seen[2] >= self.seconds

    def keep_only(self, outbox: Path, present: Iterable[Path]) -> None:
        """Forget files no longer in ``outbox`` (claimed, or taken back). Only that outbox's:
        one instance serves every folder of a hub, scanned one after the other."""
        keep = set(present)
        for path in [p for p in self._seen if p.parent == outbox and p not in keep]:
            del self._seen[path]
