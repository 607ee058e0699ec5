"""The router's events about what the adapter's agencies sent: the consume loop on the
system's own events queue (``<prefix>.events.<system>``).

The router tells the sender of every envelope what became of it (``routed``, ``rejected``
with its reason, ``duplicate``, ``unroutable``, ``dead_lettered``), tells the original
sender of a document each processing ``status`` relayed about it, and tracking tells it
when a document is ``overdue``. Each AMQP message is a JSON array of events of one type for
one party (:func:`backbone.wire.decode_events`).

Acknowledgement, as for :mod:`adapters.receiving`: :meth:`EventConsumer.events` yields
every event of a message, and the message is acknowledged only when the consumer has taken
the last of them and asks for the next event: an event is recorded (handed to the
software, written to disk) before the broker forgets it. Delivery is therefore at least
once; recording must be idempotent (``Event.event_id`` is stable across redeliveries).

Every event handed out is logged (``adapter.event``, with its envelope and document ids)
and counted (``vdx_adapter_events_total`` by type and reason). A hub's queue is bound to
its whole subtree: events for an agency this adapter does not serve are logged and
acknowledged, never handed out. A message that is not a list of events (only the router
may publish here) is logged as an error and acknowledged: nothing could ever read it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Collection

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from adapters.config import AdapterConfig
from adapters.connection import BrokerConnection
from backbone.errors import BrokerUnavailableError
from backbone.observability import metrics
from backbone.wire import Event, EventType, Names, decode_events

__all__ = ["EventConsumer"]

log = structlog.get_logger("adapters.client")

# Seconds to wait for the broker to answer a channel close on the way out.
_CLOSE_TIMEOUT = 5.0
# Events are small: a few hundred bytes each, a busy router groups them.
_EVENTS_PREFETCH = 16


class EventConsumer:
    """Consumes the events queue of ``config.system`` for the agencies in ``served``."""

    def __init__(
        self,
        config: AdapterConfig,
        names: Names,
        broker: BrokerConnection,
        served: Collection[str],
    ) -> None:
        self.config = config
        self._names = names
        self._broker = broker
        self._served = frozenset(served)
        self._wakeups: set[asyncio.Queue[AbstractIncomingMessage | None]] = set()

    @property
    def system(self) -> str:
        return self.config.system

    def end_iterators(self) -> None:
        """Make every running :meth:`events` return (the adapter is closing)."""
        for wakeup in self._wakeups:
            wakeup.put_nowait(None)

    async def events(self) -> AsyncGenerator[Event, None]:
        """Every event about what the served agencies sent, as it arrives (module
        docstring: acknowledgement, what is logged and counted)."""
        channel = await self._broker.channel()  # BrokerUnavailableError: not started
        name = self._names.events_queue(self.system)
        await channel.set_qos(prefetch_count=_EVENTS_PREFETCH)
        try:
            # A passive declare: the adapter's account may read its queue, not declare it;
            # it also registers the queue with the robust channel (restored on reconnect).
            queue = await channel.get_queue(name, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise BrokerUnavailableError(
                f"events queue {name} does not exist: the router has not declared the "
                f"topology for {self.system} (or the prefix {self.config.prefix!r} is wrong)"
            ) from None
        wakeup: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._wakeups.add(wakeup)
        await queue.consume(wakeup.put)
        try:
            while (message := await wakeup.get()) is not None:
                for event in self._unpack(message):
                    _record(event)
                    yield event
                # The consumer asked for the next event: it has recorded every one of them.
                await _acknowledge(message)
        finally:
            self._wakeups.discard(wakeup)
            # Closing the channel hands every unacknowledged message back to the broker.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), timeout=_CLOSE_TIMEOUT)

    def _unpack(self, message: AbstractIncomingMessage) -> list[Event]:
        """The events of ``message`` for served agencies; the rest logged."""
        try:
            events = decode_events(message.body)
        except ValidationError as error:
            metrics.ADAPTER_EVENTS.labels("unreadable", "none").inc()
            log.error(
                "adapter.event_unreadable",
                system=self.system,
                message_id=message.message_id,
                bytes=len(message.body),
                error=str(error.errors()[:1]),
                outcome="dropped",
            )
            return []
        served: list[Event] = []
        for event in events:
            if event.party in self._served:
                served.append(event)
                continue
            log.warning(
                "adapter.event_not_served",
                system=self.system,
                party=event.party,
                event_type=event.type.value,
                envelope_id=event.envelope_id,
                document_id=event.document_id,
                outcome="dropped",
            )
        return served


def _record(event: Event) -> None:
    """Log and count one event handed out."""
    reason = event.reason.value if event.reason is not None else "none"
    metrics.ADAPTER_EVENTS.labels(event.type.value, reason).inc()
    fields = {
        "event_type": event.type.value,
        "event_id": event.event_id,
        "party": event.party,
        "envelope_id": event.envelope_id,
        "document_id": event.document_id,
        "kind": event.kind,
        "status_code": event.status_code,
        "reason": event.reason.value if event.reason is not None else None,
        "message": event.message,
        "outcome": event.type.value,
    }
    if event.type in _TROUBLE:
        log.warning("adapter.event", **fields)
    else:
        log.info("adapter.event", **fields)


# What the sender must look at: its document did not (yet) reach every recipient.
_TROUBLE = frozenset(
    {
        EventType.REJECTED,
        EventType.UNROUTABLE,
        EventType.DEAD_LETTERED,
        EventType.OVERDUE,
        EventType.WARNED,
    }
)


async def _acknowledge(message: AbstractIncomingMessage) -> None:
    """After a reconnect the delivery tag is stale and the broker redelivers the message
    anyway, so a failure here is logged, not raised."""
    try:
        await message.ack()
    except Exception as error:
        log.warning(
            "adapter.settle_failed",
            message_id=message.message_id,
            ack=True,
            error=type(error).__name__,
            outcome="redelivery_expected",
        )
