"""A long-running process's start-up heap, kept out of the cyclic collector's full passes.

What a router or an adapter worker builds before it connects (its modules, schemas,
settings, keys and directory) lives as long as the process, yet each full (generation 2)
collection walks all of it again: on the 4 KiB path that paused the sender, the router and
the recipient 45–85 ms each, long enough to break a 50 ms p99 on its own (bench/
OPTIMISATIONS.md). :func:`freeze_start_up` moves it to the permanent generation
(:func:`gc.freeze`), so that a full collection walks only what the work made since: the same
pauses were 0.2–4.5 ms.

Called by the processes' entry points, never by the library: freezing is the process's
decision. Frozen objects are still freed by reference counting; only a reference cycle among
them would outlive its use, so it is called before the broker connections (which are
replaced on a reconnect) are made. A directory version holds no cycles: one replaced by the
next is freed whole.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_start_up"]


def freeze_start_up() -> int:
    """Collect the start-up's garbage, then freeze what is left; returns how many objects
    are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
