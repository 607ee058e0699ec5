"""Envelopes consumed through aiormq, beneath aio-pika: the hot path of the router's
inbound queue and of an adapter's inbox.

aio-pika hands each delivery to its consumer callback by wrapping aiormq's message in an
``IncomingMessage`` (a dozen attribute writes, each checking the message's lock) and running
the callback in a second task of its own, on top of the task aiormq already runs the consumer
in. :class:`DirectConsumer` registers the handler with the robust channel's current aiormq
channel instead: one task per delivery (aiormq's), and a :class:`Delivery` holding what the
router and the adapters read of it (body, headers, ``user_id``, ``redelivered``, delivery
tag, channel). Acknowledgements are unchanged: the handler acknowledges through the same
``basic.ack`` (the router in runs, ``backbone.router.acks``; an adapter one at a time).

What aio-pika's robust queue did for its consumers, it does for this one: it consumes again
on the new aiormq channel after the robust channel reopens (a reconnect after the broker
restarted or the connection dropped, or the channel closed by an error), and when the broker
cancels the consumer (the queue deleted, or it lost its leader), it checks on a channel of
its own that the queue is there again and consumes again, retrying until it can or the
consumer stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import aiormq
import structlog
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage

__all__ = ["Delivery", "DirectConsumer", "Received"]

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0  # between attempts to consume again after the broker cancelled


class Received(Protocol):
    """What is read of a delivery: aio-pika's ``IncomingMessage`` (the router's chunk and
    notice consumers) or a :class:`Delivery` (the inbound queue's, an adapter's inbox's)."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, object]: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def redelivered(self) -> bool | None: ...

    @property
    def delivery_tag(self) -> int | None: ...

    @property
    def channel(self) -> aiormq.abc.AbstractChannel: ...

    async def ack(self, multiple: bool = False) -> None: ...

    async def reject(self, requeue: bool = False) -> None: ...


class Delivery:
    """One delivery from aiormq (:class:`Received`)."""

    __slots__ = ("body", "channel", "delivery_tag", "headers", "redelivered", "user_id")

    def __init__(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        self.body: bytes = message.body
        self.headers: Mapping[str, object] = properties.headers or {}
        self.user_id: str | None = properties.user_id
        self.redelivered: bool | None = message.redelivered
        self.delivery_tag: int | None = message.delivery_tag
        self.channel: aiormq.abc.AbstractChannel = message.channel

    async def ack(self, multiple: bool = False) -> None:
        assert self.delivery_tag is not None
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple)

    async def reject(self, requeue: bool = False) -> None:
        assert self.delivery_tag is not None
        await self.channel.basic_reject(self.delivery_tag, requeue=requeue)


class DirectConsumer:
    """Consume ``queue`` on the robust ``channel`` (its QoS set) through its current aiormq
    channel, calling ``handler`` for each delivery, until :meth:`stop`. ``party`` (``router``,
    ``adapter``) begins the consumer tag and the names of the log lines."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: str,
        handler: Callable[[Delivery], Awaitable[None]],
        *,
        party: str = "router",
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._party = party
        self._tag = f"vdx-{party}.{uuid.uuid4().hex}"
        self._stopped = False
        self._recovery: asyncio.Task[None] | None = None

    @property
    def queue(self) -> str:
        return self._queue

    async def start(self) -> None:
        self._channel.reopen_callbacks.add(self._on_reopen)
        await self._consume()

    async def stop(self) -> None:
        """Stop consuming (deliveries already received still run to their end)."""
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        if self._channel.is_closed:
            return
        underlay = await self._underlay()
        if self._tag in underlay.consumers:
            await underlay.basic_cancel(self._tag)

    async def _underlay(self) -> aiormq.Channel:
        underlay = await self._channel.get_underlay_channel()  # after a reconnect: the new one
        assert isinstance(underlay, aiormq.Channel)  # its abstract type lacks ``consumers``
        return underlay

    async def _consume(self) -> None:
        underlay = await self._underlay()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancel)
        if self._tag in underlay.consumers:
            return
        await underlay.basic_consume(self._queue, self._deliver, consumer_tag=self._tag)

    async def _deliver(self, message: DeliveredMessage) -> None:
        await self._handler(Delivery(message))

    async def _on_reopen(self, *_: object) -> None:
        # A new aiormq channel (aio-pika restored its QoS first): consume on it.
        if self._stopped:
            return
        try:
            await self._consume()
        except Exception:  # aio-pika ignores a callback's failure: keep trying here
            log.warning(f"{self._party}.consume_again_failed", queue=self._queue, exc_info=True)
            self._recover()
            return
        log.info(f"{self._party}.consuming_again", queue=self._queue, cause="channel reopened")

    def _on_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag != self._tag or self._stopped:
            return
        log.warning(f"{self._party}.consumer_cancelled", queue=self._queue)
        self._recover()

    def _recover(self) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._consume_again(), name="consume-again")

    async def _consume_again(self) -> None:
        """After the broker cancelled the consumer: once the queue is there (asked on a
        channel of its own, which a missing queue closes), consume again."""
        while not self._stopped:
            try:
                underlay = await self._underlay()
                probe = await underlay.connection.channel(publisher_confirms=False)
                try:
                    await probe.queue_declare(self._queue, passive=True, timeout=5)
                finally:
                    if not probe.is_closed:
                        await probe.close()
                await self._consume()
                log.info(f"{self._party}.consuming_again", queue=self._queue, cause="recovered")
                return
            except Exception:  # the connection is down too: the robust one reconnects
                log.warning(f"{self._party}.consume_again_failed", queue=self._queue, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
