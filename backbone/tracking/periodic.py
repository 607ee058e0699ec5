"""The tracking checks' loop: run a check every interval until cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["check_every"]

log = structlog.get_logger(__name__)


async def check_every(
    check: Callable[[], Awaitable[object]], interval: float, failure: str
) -> None:
    """Run ``check`` every ``interval`` seconds until cancelled; a failing check is logged as
    ``failure`` and tried again next time."""
    while True:
        try:
            await check()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failure)
        await asyncio.sleep(interval)
