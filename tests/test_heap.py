"""backbone/heap.py: a worker's start-up heap frozen out of the full collections, without
freezing its garbage or keeping what reference counting frees."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from backbone.heap import freeze_start_up


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of this test process collects as before


def test_the_start_up_heap_is_frozen_and_its_garbage_collected_first(unfrozen: None) -> None:
    kept = _Node()
    garbage = _Node()
    garbage.other = _Node()
    garbage.other.other = garbage  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage

    frozen = freeze_start_up()

    assert frozen == gc.get_freeze_count() > 0
    assert gone() is None  # collected, not frozen
    assert gc.is_tracked(kept)
    assert all(kept is not found for found in gc.get_objects())  # out of every generation


def test_a_frozen_object_without_cycles_is_still_freed_when_dropped(unfrozen: None) -> None:
    version = _Node()  # as a directory version replaced by the next: no cycles
    dropped = weakref.ref(version)
    freeze_start_up()

    del version

    assert dropped() is None
