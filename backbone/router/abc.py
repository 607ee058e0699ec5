"""The router's interfaces (as aio-pika keeps its ``abc``): what may run beside a replica.

The router knows nothing of tracking; the process that runs a replica
(:mod:`backbone.replica`) hands it extensions, and the router serves their HTTP routes on
its server and runs their background work with a way to emit events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from fastapi import APIRouter

from backbone.wire import Event

__all__ = ["Emit", "Extension"]

Emit = Callable[[Event], Awaitable[None]]  # publish one event on the events exchange


class Extension(Protocol):
    """Something that runs beside a router replica (tracking: its API, page and watch)."""

    def routers(self) -> Sequence[APIRouter]:
        """HTTP routes for the replica's server (when it has one)."""
        ...

    async def run(self, emit: Emit) -> None:
        """Background work until cancelled; ``emit`` tells senders and operators."""
        ...
