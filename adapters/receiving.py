"""Receiving: the consume loop on the adapter's inbox queue, what each message yields, when
it is acknowledged, and what is done with refusals.

Acknowledgement: :meth:`InboxConsumer.received` yields one :class:`Received` per served
recipient of each envelope. The AMQP message is acknowledged only when the consumer has
taken every item of it and asks for the next one, so a consumer that crashes (or stops
iterating) before that gets the message again. Redeliveries already handed out are dropped
from a bounded in-memory set (:mod:`adapters.redeliveries`). Status 01 is sent, when
``auto_arrival``, after the consumer asked for the next item and before the ack.

Opening each body (:mod:`adapters.opening`) starts as the message arrives; refused content
goes to ``keep_refused`` and is answered with status 02 (:mod:`adapters.statuses`); what is
not authentic is dead-lettered. The module docstring of :mod:`adapters.client` tells the
whole contract.

Budget per envelope, so that no envelope can stall the ones behind it (issue 14):

- memory: the body is at most ``max_envelope_bytes`` (checked before anything else), and
  the edXML pre-scan (:mod:`backbone.edxml.prescan`, limits in
  :class:`~backbone.edxml.XmlLimits`) refuses, in one streaming pass and before any tree is
  built, a document with more nodes, attributes or namespace declarations, or deeper
  nesting, than real edXML comes near: the tree, the schema validation and the XML-DSig
  canonicalisation after it are then linear in a bounded document.
- time: the same limits bound the CPU of one opening (a refused attack costs about as much
  as parsing its first 20,000 elements: tenths of a second); the content is judged once per
  envelope, not once per served agency.
- no head-of-line blocking: envelopes over ``_INLINE_OPEN_BYTES`` are opened on a small
  thread pool of this iterator's own, up to ``prefetch`` in flight, and every envelope is
  handed out as soon as it is opened, not in arrival order. Small ones are opened at once
  on the event loop: their cost is bounded by their size (a few milliseconds), and the
  thread hand-offs would double it (bench/OPTIMISATIONS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustChannel

from adapters.abc import Received, RefusalKeeper, Refused
from adapters.chunked_inbox import ChunkedInbox
from adapters.config import AdapterConfig
from adapters.connection import BrokerConnection
from adapters.handbacks import HandBacks
from adapters.opening import EnvelopeOpener, Opened
from adapters.redeliveries import DeliveredMemory
from adapters.statuses import StatusSender
from backbone.broker.direct_consume import Delivery, DirectConsumer
from backbone.broker.direct_consume import Received as InboxMessage
from backbone.clock import VIETNAM
from backbone.edxml import EdxmlDocument, EdxmlStatus
from backbone.envelope.staging import Expired
from backbone.errors import (
    BackboneError,
    BrokerUnavailableError,
    Reason,
    RevocationUnknownError,
    StoreUnavailableError,
)
from backbone.observability import metrics
from backbone.wire import (
    FORM_CHUNK,
    H_DOCUMENT,
    H_ENVELOPE,
    H_FORM,
    H_REPUBLISHED,
    H_SENDER,
    Names,
    header_text,
)

__all__ = ["InboxConsumer", "processing_order"]

# What may succeed when tried again: the broker back, a fresh CRL, the store back.
_TRANSIENT = (BrokerUnavailableError, RevocationUnknownError, StoreUnavailableError)

log = structlog.get_logger("adapters.client")

# Seconds to wait for the broker to answer a channel close on the way out.
_CLOSE_TIMEOUT = 5.0
# Envelopes up to this size are opened on the event loop, larger ones on the thread pool:
# 16 KiB of edXML holds at most about 4,000 nodes, a few milliseconds of work whatever it is.
_INLINE_OPEN_BYTES = 16 * 1024
# Threads opening envelopes, per receiving iterator (never more than the prefetch).
_OPEN_THREADS = 4
# The longest wait between two looks for expired staged documents.
_EXPIRY_SECONDS = 60.0


def processing_order(item: Received) -> tuple[datetime, datetime, str]:
    """Sort key putting items in the order they happened: the edXML Timestamp (whole
    seconds, local time), then when the sender sealed it (microseconds), then the envelope
    id. The drop folder names status files by the same rule. Documents have no Timestamp:
    their seal time stands in for it."""
    message = item.message
    created = item.header.created
    stamp = (
        message.timestamp.replace(tzinfo=None)
        if isinstance(message, EdxmlStatus)
        else created.astimezone(VIETNAM).replace(tzinfo=None)
    )
    return stamp, created, item.header.envelope_id


@dataclass(slots=True)
class _Pending:
    """One consumed AMQP message and what it yields."""

    message: InboxMessage
    items: list[Received]


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A consumed message, and the opening of it already under way on the thread pool."""

    message: InboxMessage
    opened: asyncio.Future[Opened]


class InboxConsumer:
    """Consumes the adapter's inbox queue; ``auto_arrival`` and ``keep_refused`` as
    :class:`~adapters.client.AdapterClient` documents them."""

    def __init__(
        self,
        config: AdapterConfig,
        names: Names,
        broker: BrokerConnection,
        opener: EnvelopeOpener,
        statuses: StatusSender,
        memory: DeliveredMemory,
        *,
        auto_arrival: bool,
        keep_refused: RefusalKeeper | None,
        chunked: ChunkedInbox | None = None,
        served: Collection[str] = (),
    ) -> None:
        """``chunked``: where chunked documents are staged (none: they are refused), for
        the ``served`` agencies."""
        self.config = config
        self._served = frozenset(served)
        self._chunked = chunked
        self.auto_arrival = auto_arrival
        self.keep_refused = keep_refused
        self._names = names
        self._broker = broker
        self._opener = opener
        self._statuses = statuses
        self._seen = memory
        self._hand_backs = HandBacks(config.delivery_limit)
        self._consume_channels: set[aio_pika.abc.AbstractChannel] = set()  # strong refs
        self._wakeups: set[asyncio.Queue[_Arrival | None]] = set()
        self.consumers: set[DirectConsumer] = set()  # one per running received()

    @property
    def system(self) -> str:
        return self.config.system

    def end_iterators(self) -> None:
        """Make every running :meth:`received` return (the adapter is closing)."""
        for wakeup in self._wakeups:
            wakeup.put_nowait(None)

    async def received(self) -> AsyncGenerator[Received, None]:
        """Documents and statuses for the served agencies, as they arrive (module docstring:
        acknowledgement, redeliveries, status 01, ordering)."""
        channel = await self._broker.channel()  # BrokerUnavailableError: not started
        inbox = self._names.inbox_queue(self.system)
        await channel.set_qos(prefetch_count=self.config.prefetch)
        try:
            # ensure=True: a passive declare, so that a missing inbox is said now. The
            # consumer below consumes again after a reconnect by itself.
            queue = await channel.get_queue(inbox, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise BrokerUnavailableError(
                f"inbox queue {inbox} does not exist: the router has not declared the topology "
                f"for {self.system} (or the prefix {self.config.prefix!r} is wrong)"
            ) from None
        wakeup: asyncio.Queue[_Arrival | None] = asyncio.Queue()
        self._consume_channels.add(channel)
        self._wakeups.add(wakeup)
        opening: set[asyncio.Future[Opened]] = set()
        pool = ThreadPoolExecutor(
            max_workers=min(self.config.prefetch, _OPEN_THREADS),
            thread_name_prefix=f"open-{self.system}",
        )

        async def enqueue(message: Delivery) -> None:
            form = header_text(message, H_FORM)
            if form is not None and self._chunked is not None:
                await self._stage(message, form, wakeup)
                return
            # Opened as it arrives, and handed out when opened: a slow envelope does not
            # hold up the ones behind it (module docstring).
            opened = self._start_opening(message.body, pool)
            opening.add(opened)

            def ready(future: asyncio.Future[Opened]) -> None:
                opening.discard(future)
                if not future.cancelled():
                    wakeup.put_nowait(_Arrival(message, future))

            opened.add_done_callback(ready)

        # Through aiormq, beneath aio-pika's consumer (backbone.broker.direct_consume): what
        # aio-pika's robust queue did, it does (consuming again after a reconnect, or after
        # the broker cancelled it), without a wrapper and a second task per message.
        assert isinstance(channel, AbstractRobustChannel)  # the connection is robust
        consumer = DirectConsumer(channel, queue.name, enqueue, party="adapter")
        await consumer.start()
        self.consumers.add(consumer)
        expiry = (
            asyncio.create_task(self._expire_periodically(), name=f"expire-{self.system}")
            if self._chunked is not None
            else None
        )
        try:
            while (arrival := await wakeup.get()) is not None:
                message = arrival.message
                pending = await self._unpack(message, arrival.opened)
                if pending is None:
                    continue
                settled = True
                for item in pending.items:
                    metrics.labelled(metrics.ADAPTER_RECEIVED, str(item.header.kind)).inc()
                    yield item
                    # The consumer asked for the next item: it has handled this one.
                    if not await self._taken(item, message):
                        settled = False
                        break
                if settled:
                    self._hand_backs.done(message)
                    await _settle(message, ack=True)
                    self._delivered(message)
        finally:
            if expiry is not None:
                expiry.cancel()
            self._wakeups.discard(wakeup)
            self.consumers.discard(consumer)
            with contextlib.suppress(Exception):  # as the channel's close below
                await asyncio.wait_for(consumer.stop(), timeout=_CLOSE_TIMEOUT)
            for opened in list(opening):  # not handed out: their messages go back to the queue
                opened.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            # Closing the channel hands every unacked message back to the broker. After a
            # network cut the broker may never answer the close: don't wait for it forever
            # (the connection's loss hands them back as well).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), timeout=_CLOSE_TIMEOUT)
            self._consume_channels.discard(channel)

    async def _stage(
        self,
        message: InboxMessage,
        form: str,
        wakeup: asyncio.Queue[_Arrival | None],
    ) -> None:
        """A chunked document's message (:mod:`adapters.chunked_inbox`): acknowledged once
        staged; the one completing its document is handed out as an opened envelope is,
        and a refused one judged by :meth:`_unpack` as an envelope that cannot be opened."""
        assert self._chunked is not None
        outcome: asyncio.Future[Opened] = asyncio.get_running_loop().create_future()
        try:
            opened = await self._chunked.take(message.body, form)
        except Exception as error:
            outcome.set_exception(error)
        else:
            if opened is None:
                await _settle(message, ack=True)
                return
            outcome.set_result(opened)
        wakeup.put_nowait(_Arrival(message, outcome))

    async def _expire_periodically(self) -> None:
        """Every quarter of ``staging_timeout_seconds`` (at most a minute): delete the staged
        documents incomplete past the timeout and tell each sender (status 02,
        ``[document_incomplete]``) and the operators (the log)."""
        assert self._chunked is not None
        interval = min(self.config.staging_timeout_seconds / 4, _EXPIRY_SECONDS)
        while True:
            await asyncio.sleep(interval)
            try:
                for expired in await self._chunked.expire():
                    await self._report_incomplete(expired)
            except Exception:
                log.exception("adapter.expiry_failed", system=self.system)

    async def _report_incomplete(self, expired: Expired) -> None:
        header = expired.header
        missing = ", ".join(str(index) for index in expired.missing[:10])
        more = "…" if len(expired.missing) > 10 else ""
        message = (
            f"envelope {header.envelope_id}: {len(expired.missing)} of its "
            f"{header.chunk_count} chunks (chunk {missing}{more}) did not arrive within "
            f"{self.config.staging_timeout_seconds:g} s; what had arrived was deleted: send "
            "the document again"
        )
        for recipient in header.recipients:
            if recipient not in self._served:
                continue
            log.error(
                "adapter.document_incomplete",
                envelope_id=header.envelope_id,
                document_id=header.document_id,
                sender=header.sender,
                recipient=recipient,
                missing=len(expired.missing),
                reason=Reason.DOCUMENT_INCOMPLETE.value,
                outcome="expired",
            )
            refusal = Refused(
                header=header,
                recipient=recipient,
                reason=Reason.DOCUMENT_INCOMPLETE,
                message=message,
                body=b"",  # nothing of it is kept
                edxml=None,
                refused_at=datetime.now(UTC),
            )
            await self._statuses.answer_refusal(refusal)

    def _delivered(self, message: InboxMessage) -> None:
        """``message`` was settled: if it completed a chunked document, that document's
        delivered file is not needed any more."""
        if self._chunked is not None and header_text(message, H_FORM) == FORM_CHUNK:
            self._chunked.done(header_text(message, H_ENVELOPE))

    async def _hand_back(self, message: InboxMessage) -> None:
        """Give ``message`` back to the broker to be tried again, or, once it has failed
        ``delivery_limit`` times here, dead-letter it (:mod:`adapters.handbacks`)."""
        if self._hand_backs.failed(message):
            await _settle(message, ack=False, requeue=True)
            return
        log.error(
            "adapter.dead_lettered",
            envelope_id=header_text(message, H_ENVELOPE),
            failures=self._hand_backs.limit,
            outcome="dead_lettered",
        )
        await _settle(message, ack=False, requeue=False)

    async def _taken(self, item: Received, message: InboxMessage) -> bool:
        """Remember ``item`` as handled; send its status 01 if due. False when the message
        must go back to the queue (the status could not be sent)."""
        key = (item.envelope_id, item.recipient)
        self._seen.remember(key, arrived=not isinstance(item.message, EdxmlDocument))
        if not self.auto_arrival or self._seen.answered(key, True):
            return True
        fields = {
            "envelope_id": item.envelope_id,
            "document_id": item.header.document_id,
            "sender": item.header.sender,
            "recipient": item.recipient,
        }
        try:
            await self._statuses.acknowledge_arrival(item)
        except _TRANSIENT as error:
            log.warning(
                "adapter.arrival_failed", **fields, reason=error.reason.value, outcome="requeued"
            )
            await self._hand_back(message)
            return False
        except (BackboneError, ValueError) as error:
            # This 01 can never be sent (its status would be refused, whatever the retry):
            # the item is handed out already; say so and go on with the next.
            reason = error.reason.value if isinstance(error, BackboneError) else "invalid_status"
            log.error(
                "adapter.arrival_unanswerable",
                **fields,
                reason=reason,
                error=str(error),
                outcome="not_answered",
            )
            self._seen.mark_answered(key)
        return True

    async def _unpack(self, message: InboxMessage, opened: Awaitable[Opened]) -> _Pending | None:
        """Judge one AMQP message as ``opened`` (:meth:`EnvelopeOpener.open` on it); None
        when it was settled here (rejected, or a duplicate acknowledged)."""
        try:
            items, refusals = await opened
        except (RevocationUnknownError, StoreUnavailableError) as error:
            # Configuration that can be fixed (a fresh CRL): try again, up to the adapter's
            # delivery_limit (its own count), after which it is dead-lettered.
            self._log_refused(message, error, outcome="requeued")
            await self._hand_back(message)
            return None
        except BackboneError as error:
            # Bad framing, signature, certificate or key: it can never succeed. An invalid
            # envelope on an inbox is an attack or a bug: dead-letter it for operators.
            self._log_refused(message, error, outcome="dead_lettered")
            await _settle(message, ack=False, requeue=False)
            return None
        except Exception:
            log.exception(
                "adapter.open_failed",
                envelope_id=header_text(message, H_ENVELOPE),
                outcome="requeued",
            )
            await self._hand_back(message)
            return None
        for refusal in refusals:
            if not await self._refuse(refusal, message):
                return None  # requeued: kept or answered only partly, done again later
        possibly_repeated = message.redelivered or bool((message.headers or {}).get(H_REPUBLISHED))
        fresh: list[Received] = []
        for item in items:
            key = (item.envelope_id, item.recipient)
            if key not in self._seen:
                fresh.append(item)
                log.info(
                    "adapter.received",
                    envelope_id=item.envelope_id,
                    document_id=item.header.document_id,
                    sender=item.header.sender,
                    recipient=item.recipient,
                    forwarded_from=item.forwarded_from,
                    kind=str(item.header.kind),
                    redelivered=possibly_repeated,
                    outcome="received",
                )
                continue
            # Handed out before (a redelivery, or the router republishing after a crash).
            log.info(
                "adapter.duplicate_dropped",
                envelope_id=item.envelope_id,
                document_id=item.header.document_id,
                sender=item.header.sender,
                recipient=item.recipient,
                redelivered=possibly_repeated,
                outcome="duplicate",
            )
            if not await self._taken(item, message):  # its status 01 may still be owed
                return None
        if not fresh:
            # Nothing new to hand out. Acknowledge it, unless all it held was refused and
            # no keeper has it: then the dead-letter queue keeps it for the operator.
            keep = bool(items) or self.keep_refused is not None
            self._hand_backs.done(message)
            await _settle(message, ack=keep)
            self._delivered(message)
            return None
        return _Pending(message, fresh)

    async def _refuse(self, refusal: Refused, message: InboxMessage) -> bool:
        """Keep a refusal and tell its sender (status 02) once. False when the message went
        back to the queue because either could not be done now."""
        header, key = refusal.header, (refusal.header.envelope_id, refusal.recipient)
        fields = {
            "envelope_id": header.envelope_id,
            "document_id": header.document_id,
            "sender": header.sender,
            "recipient": refusal.recipient,
            "reason": refusal.reason.value,
        }
        if self._seen.answered(key):
            log.info("adapter.refusal_repeated", **fields, outcome="duplicate")
            return True
        try:
            if self.keep_refused is not None:
                await self.keep_refused(refusal)
            answered = await self._statuses.answer_refusal(refusal)
        except Exception as error:
            log.warning(
                "adapter.refusal_pending",
                **fields,
                error=f"{type(error).__name__}: {error}",
                outcome="requeued",
            )
            await self._hand_back(message)
            return False
        metrics.ADAPTER_RECEIVE_FAILURES.labels(refusal.reason.value).inc()
        log.error(
            "adapter.content_refused",
            **fields,
            error=refusal.message,
            kept="keeper" if self.keep_refused is not None else "dead_letter",
            outcome="status_02" if answered else "refused",
        )
        self._seen.remember(key, arrived=True)
        return True

    def _start_opening(self, body: bytes, pool: ThreadPoolExecutor) -> asyncio.Future[Opened]:
        """:meth:`EnvelopeOpener.open` on ``body``: at once for an envelope up to
        ``_INLINE_OPEN_BYTES``, on ``pool`` for a larger one, so that neither a big
        attachment nor bulk hostile content holds up the event loop. A small one costs about
        a millisecond of CPU here; on a thread the GIL hand-offs between threads doubled
        that (bench/OPTIMISATIONS.md)."""
        loop = asyncio.get_running_loop()
        if len(body) > _INLINE_OPEN_BYTES:
            return loop.run_in_executor(pool, self._opener.open, body)
        opened: asyncio.Future[Opened] = loop.create_future()
        try:
            opened.set_result(self._opener.open(body))
        except Exception as error:  # judged by _unpack, as from the thread pool
            opened.set_exception(error)
        return opened

    def _log_refused(self, message: InboxMessage, error: BackboneError, *, outcome: str) -> None:
        metrics.ADAPTER_RECEIVE_FAILURES.labels(error.reason.value).inc()
        log.error(
            "adapter.envelope_refused",
            system=self.system,
            envelope_id=header_text(message, H_ENVELOPE),
            document_id=header_text(message, H_DOCUMENT),
            sender=header_text(message, H_SENDER),
            reason=error.reason.value,
            error=error.message,
            redelivered=message.redelivered,
            outcome=outcome,
        )


async def _settle(message: InboxMessage, *, ack: bool, requeue: bool = False) -> None:
    """Ack or reject; after a reconnect the delivery tag is stale and the broker redelivers
    the message anyway, so a failure here is logged, not raised."""
    try:
        if ack:
            await message.ack()
        else:
            await message.reject(requeue=requeue)
    except Exception as error:
        log.warning(
            "adapter.settle_failed",
            envelope_id=header_text(message, H_ENVELOPE),
            ack=ack,
            error=type(error).__name__,
            outcome="redelivery_expected",
        )
