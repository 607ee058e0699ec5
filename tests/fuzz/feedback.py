"""Coverage for readers that run in compiled code.

``decode_events`` is one call into pydantic-core (Rust): atheris instruments Python only, so
libFuzzer would see one edge for every input and shrink the corpus to a single byte. Here
each distinct outcome (an error's type at a field, or an accepted field's kind of value) is
hashed to one of ``SLOTS`` tiny functions; under the worker each is instrumented on its
own, so reaching a new outcome is a new edge and libFuzzer keeps the input that did.
Outside the worker (the regression test) they are plain functions doing nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

__all__ = ["SLOTS", "instrument", "note"]

SLOTS = 4096  # distinct outcomes seen apart; a collision only merges two


def _slot() -> Callable[[], None]:
    def reached() -> None:
        return None

    return reached


_slots: list[Callable[[], None]] = [_slot() for _ in range(SLOTS)]


def instrument(wrap: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
    """Give every slot its own coverage counter (``atheris.instrument_func``)."""
    _slots[:] = [wrap(_slot()) for _ in range(SLOTS)]


def note(outcomes: Iterable[str]) -> None:
    for outcome in outcomes:
        _slots[zlib.crc32(outcome.encode("utf-8", "surrogateescape")) % SLOTS]()
