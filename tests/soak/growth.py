"""Does a measure keep growing after warm-up? A verdict from samples, nothing else.

The first ``warmup`` share of the run is left out (caches filling, pools opening, the
store's first pages). The rest is cut in thirds; the measure *keeps growing* when both

- the last third's maximum exceeds the middle third's maximum by more than the tolerance
  (a plateau, or a sawtooth such as a garbage collector's, repeats its peaks), and
- the last third's median exceeds the middle third's median by more than the tolerance
  (one spike at the end is not growth).

Peaks and medians rather than a fitted line: a router restart in the middle drops its
memory to nothing and a slope over that would say "growing" while the new process only
warms up again. The faults are put in the middle third for that reason (tests/soak/run.py).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Tolerance", "Verdict", "judge"]


@dataclass(frozen=True)
class Tolerance:
    """Growth allowed between the middle and the last third: ``absolute`` units plus
    ``relative`` of the middle third's value."""

    absolute: float
    relative: float = 0.0

    def allows(self, before: float, after: float) -> bool:
        return after <= before + self.absolute + self.relative * abs(before)


@dataclass(frozen=True)
class Verdict:
    growing: bool
    middle_max: float
    last_max: float
    middle_median: float
    last_median: float
    samples: int  # samples judged (after warm-up)

    @property
    def word(self) -> str:
        return "GROWING" if self.growing else "flat"


def judge(values: Sequence[float], tolerance: Tolerance, *, warmup: float = 0.2) -> Verdict:
    """The verdict on ``values`` (samples at a steady interval, in order)."""
    judged = [v for v in values[int(len(values) * warmup) :] if v == v]  # NaN: not read
    if len(judged) < 6:
        raise ValueError(f"{len(judged)} samples after warm-up: too few to judge growth")
    third = len(judged) // 3
    middle, last = judged[third : 2 * third], judged[2 * third :]
    verdict = Verdict(
        growing=False,
        middle_max=max(middle),
        last_max=max(last),
        middle_median=statistics.median(middle),
        last_median=statistics.median(last),
        samples=len(judged),
    )
    growing = not tolerance.allows(verdict.middle_max, verdict.last_max) and not (
        tolerance.allows(verdict.middle_median, verdict.last_median)
    )
    return dataclasses.replace(verdict, growing=growing)
