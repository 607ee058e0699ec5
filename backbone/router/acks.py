"""Acknowledgements in runs: one ``basic.ack`` with ``multiple`` for many settled deliveries.

The router finishes envelopes out of order, hundreds at a time; an ack frame per envelope
was a write to the socket and a frame for the broker each. :class:`Acknowledger` remembers
the deliveries of one consumer channel that are still being processed, and when envelopes
are settled it acknowledges, at the end of that turn of the event loop, everything up to
the highest delivery tag below the oldest one still in progress — never past it, so an
envelope is never acknowledged before it is finished. A requeued delivery is rejected on
its own at once, and then counts as settled.

Every delivery of the channel must go through it: a ``multiple`` ack covers them all.
"""

from __future__ import annotations

import asyncio
import heapq

import structlog

from backbone.broker.direct_consume import Received

__all__ = ["Acknowledger"]

log = structlog.get_logger(__name__)


class _Window:
    """The deliveries of one underlying channel: tags in progress, and the newest settled
    message not yet acknowledged."""

    def __init__(self) -> None:
        self.in_progress: list[int] = []  # a heap; settled tags are removed lazily
        self.settled: set[int] = set()
        self.pending: dict[int, Received] = {}  # settled, not yet acked


class Acknowledger:
    def __init__(self) -> None:
        self._windows: dict[object, _Window] = {}  # by underlying channel
        self._flush_scheduled = False
        self._acking: set[asyncio.Task[None]] = set()

    def received(self, message: Received) -> None:
        """Call first thing for each delivery, in delivery order."""
        window = self._windows.setdefault(message.channel, _Window())
        heapq.heappush(window.in_progress, _tag(message))

    def ack(self, message: Received) -> None:
        """The envelope is finished: acknowledge it with the next run."""
        window = self._windows.get(message.channel)
        if window is None:  # its channel is gone; the broker redelivers it
            return
        window.settled.add(_tag(message))
        window.pending[_tag(message)] = message
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def reject(self, message: Received) -> None:
        """Requeue the delivery now: only when the router could not even publish it again
        with its own count (``router.retries``); the broker may or may not count it."""
        try:
            if not message.channel.is_closed:
                await message.reject(requeue=True)
        finally:
            window = self._windows.get(message.channel)
            if window is not None:
                window.settled.add(_tag(message))

    async def drain(self) -> None:
        """Wait for the acks already sent out."""
        self._flush()
        if self._acking:
            await asyncio.wait(self._acking)

    def _flush(self) -> None:
        self._flush_scheduled = False
        for key, window in list(self._windows.items()):
            heap = window.in_progress
            while heap and heap[0] in window.settled:
                window.settled.discard(heapq.heappop(heap))
            oldest = heap[0] if heap else None
            ready = [tag for tag in window.pending if oldest is None or tag < oldest]
            if not ready:
                continue
            last = window.pending[max(ready)]
            for tag in ready:
                del window.pending[tag]
            if last.channel.is_closed:
                del self._windows[key]  # a new channel after a reconnect; these redeliver
                continue
            task = asyncio.create_task(self._ack_up_to(last))
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)
            if not heap and not window.pending:
                del self._windows[key]

    @staticmethod
    async def _ack_up_to(message: Received) -> None:
        try:
            await message.ack(multiple=True)
        except Exception:  # the channel closed meanwhile: the broker redelivers them
            log.warning("router.ack_failed", delivery_tag=message.delivery_tag)


def _tag(message: Received) -> int:
    tag = message.delivery_tag
    if tag is None:
        raise ValueError("a delivery without a delivery tag cannot be acknowledged")
    return tag
