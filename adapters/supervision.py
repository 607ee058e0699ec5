"""Keeping a consuming loop of the drop folder or the gateway alive: what it did not record
it did not acknowledge, so after a failure the broker hands the same message out again, and the loop
is simply started again, with backoff, until the service stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["supervise"]

log = structlog.get_logger("adapters")


async def supervise(
    loop: Callable[[], Awaitable[None]],
    *,
    failure: str,
    stopping: asyncio.Event,
    retry_initial: float = 0.5,
    retry_max: float = 30.0,
) -> None:
    """Run ``loop`` until it returns (the adapter was closed) or ``stopping`` is set; after
    each failure log ``failure`` and wait (doubling, up to ``retry_max``)."""
    delay = retry_initial
    while not stopping.is_set():
        try:
            await loop()
        except Exception:
            log.exception(failure, outcome="retry", retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, retry_max)
        else:
            return
