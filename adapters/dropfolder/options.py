"""How fast the drop folder polls, how many files it handles at once, how it retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DropFolderOptions"]


@dataclass(frozen=True, slots=True)
class DropFolderOptions:
    poll_interval: float = 0.5  # seconds between outbox scans
    # An outbox file is taken once unchanged this long (0: at first sight, rename rule only).
    settle_seconds: float = 1.0
    concurrency: int = 8  # outbox files sealed/published at once, all agencies together
    retry_initial: float = 0.5  # first wait after a failed publish; doubles up to retry_max
    retry_max: float = 30.0
    write_retry_max: float = 5.0  # longest wait between attempts to write a received item
    publish_timeout: float = 120.0  # a publish not confirmed by then is retried (same bytes)
    journal_days: float = 30.0  # how long a received envelope is remembered
    monotonic: Callable[[], float] = time.monotonic  # the settling clock (tests inject one)
