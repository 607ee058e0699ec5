"""Events to the events exchange, many to a message when they come faster than confirms.

Every envelope the router finishes produces at least one event, and a persistent, confirmed
publish per event cost the router about as much as the envelope itself. :class:`EventPublisher`
groups the events waiting for the same routing key (one type, one party) into one message —
a JSON array of events — the way the store's group commit groups writes: the first event is
published at once, and what arrives while its confirm is awaited forms the next message. An
idle router publishes single-event arrays with no timer; a busy one, one message per party
and round. Each caller returns when the message holding its event is confirmed, so the router
still acknowledges an envelope only after its events are safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from backbone.wire.events import Event, encode_events

__all__ = ["EventPublisher", "Publish"]

# Events per message at most (an event is a few hundred bytes of JSON).
MAX_EVENTS_PER_MESSAGE = 256

Publish = Callable[[str, bytes, str], Awaitable[None]]
"""``publish(routing_key, body, event_type)``: one persistent message, returning once the
broker confirmed it and raising when it did not."""


class EventPublisher:
    def __init__(self, publish: Publish, *, max_events: int = MAX_EVENTS_PER_MESSAGE) -> None:
        if max_events < 1:
            raise ValueError("a message holds at least one event")
        self._publish = publish
        self._max_events = max_events
        self._waiting: dict[str, list[tuple[Event, asyncio.Future[None]]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def emit(self, event: Event, routing_key: str) -> None:
        """Publish ``event`` under ``routing_key``; return when the broker confirmed it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(routing_key, []).append((event, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="events-publisher")
        await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                messages = [
                    (key, items[start : start + self._max_events])
                    for key, items in waiting.items()
                    for start in range(0, len(items), self._max_events)
                ]
                await asyncio.gather(*(self._publish_one(key, items) for key, items in messages))
        finally:
            self._flusher = None
            for items in self._waiting.values():  # cancelled with events still waiting
                _cancel(items)
            self._waiting = {}

    async def _publish_one(
        self, routing_key: str, items: list[tuple[Event, asyncio.Future[None]]]
    ) -> None:
        # A caller cancelled while waiting (its envelope requeued) still gets its event out:
        # it is already decided and harmless to repeat, and leaving it out saves nothing.
        events = [event for event, _ in items]
        try:
            await self._publish(routing_key, encode_events(events), events[0].type.value)
        except Exception as error:
            _fail(items, error)
            return
        except BaseException:
            _cancel(items)
            raise
        for _, future in items:
            if not future.done():
                future.set_result(None)


def _fail(items: list[tuple[Event, asyncio.Future[None]]], error: BaseException) -> None:
    for _, future in items:
        if not future.done():
            future.set_exception(error)


def _cancel(items: list[tuple[Event, asyncio.Future[None]]]) -> None:
    for _, future in items:
        future.cancel()
