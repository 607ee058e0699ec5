"""The router process: consume envelopes, decide, publish with confirms, ack last.

Every inbound envelope ends in exactly one of: routed (one publish per recipient tier
exchange, all confirmed, then acked), rejected (in quarantine, whole or as a record of it:
``router.quarantine``; sender told; acked),
answered as a duplicate (sender told the original outcome, acked), or, when processing
itself fails, published again to the inbound queue with the router's own count of attempts,
and dead-lettered by the router after ``delivery_limit`` of them (``router.retries``: never
left to the broker's nack counting). Nothing is acknowledged before what it promises is
confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from backbone.broker import direct_publish
from backbone.broker.direct_consume import DirectConsumer, Received
from backbone.broker.directory_versions import DirectoryUpdates, LiveDirectory, follow_versions
from backbone.broker.failures import broker_failure
from backbone.clock import utc_now
from backbone.directory import Directory
from backbone.envelope import EnvelopeHeader, Kind
from backbone.envelope.chunk_wire import check_chunk, read_chunk
from backbone.envelope.chunked import ChunkedHeader
from backbone.errors import BackboneError, ChunkError, Reason
from backbone.observability import metrics
from backbone.observability.http import HttpServer, make_app
from backbone.observability.listen import LOOPBACK
from backbone.organ import OrganCode
from backbone.router.abc import Extension
from backbone.router.acks import Acknowledger
from backbone.router.chunks import (
    DEFAULT_PER_SENDER,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL,
    DEFAULT_WAITING_PER_ACCOUNT,
    HEADER_WAIT_SECONDS,
    HOLD_SECONDS,
    OpenDocument,
    OpenDocuments,
    WaitingChunks,
)
from backbone.router.inbox_full import held_message, is_refused_by_a_queue, recipients_of_keys
from backbone.router.parked import ParkedNotices
from backbone.router.parties import party_to_tell
from backbone.router.pipeline import Duplicate, Pipeline, Reject, Route
from backbone.router.publisher import EventPublisher
from backbone.router.quarantine import DEFAULT_KEEP_BODY_BYTES, Quarantine
from backbone.router.retries import (
    Attempts,
    broker_login,
    dead_letter_message,
    read_attempts,
    retry_message,
    waiting_message,
    waiting_since,
)
from backbone.router.topology import apply_topology
from backbone.store.abc import Refusal, Store
from backbone.wire import (
    FORM_CHUNK,
    FORM_CHUNKED_HEADER,
    H_ENVELOPE,
    H_FORM,
    Event,
    EventType,
    Names,
    envelope_properties,
    header_text,
    status_events,
)

__all__ = ["Router", "RouterOptions", "start"]

log = structlog.get_logger(__name__)

_M = TypeVar("_M", bound=Received)  # what a consumer hands its handler


@dataclass(frozen=True, slots=True)
class RouterOptions:
    amqp_url: str
    names: Names = field(default_factory=Names)
    connect_timeout: float = 30.0  # seconds for the connection and the AMQP handshake
    prefetch: int = 256
    # Chunks of chunked documents in flight (their own queue and channel): each up to 8 MiB.
    chunk_prefetch: int = 4
    # Failed processing attempts before the router dead-letters an envelope (its own count,
    # ``router.retries``); also the broker's x-delivery-limit on the inbound queue and the
    # inboxes unless ``broker_delivery_limit`` is false (then none is declared: the broker's
    # default applies, none on 3.x, 20 on 4.x).
    delivery_limit: int = 5
    broker_delivery_limit: bool = True
    max_envelope_bytes: int = 16 * 1024 * 1024
    # Refused envelopes up to this size, header readable, are quarantined whole; others
    # as a record (header, SHA-256, size, reason), never their bulk.
    quarantine_body_bytes: int = DEFAULT_KEEP_BODY_BYTES
    http_port: int | None = None  # /metrics, /healthz, /readyz (and extensions') when set
    http_host: str = LOOPBACK  # the address it listens on: loopback unless configured
    # Chunked documents under way (backbone.router.chunks): per sender, in all, and how
    # long one is remembered after its header.
    max_open_chunked_per_sender: int = DEFAULT_PER_SENDER
    max_open_chunked: int = DEFAULT_TOTAL
    chunked_timeout_seconds: float = DEFAULT_TIMEOUT.total_seconds()
    # How long after it was first seen a chunk whose header is not routed yet (here or on
    # another replica) is refused as chunk_foreign; it is put back behind the chunk queue
    # meanwhile, never held for long.
    chunk_header_wait_seconds: float = HEADER_WAIT_SECONDS
    # Chunks of one publishing account this replica puts back waiting for their header at
    # a time; the account's next chunk of no known header is refused at once
    # (too_many_waiting_chunks), not put back.
    max_waiting_chunks_per_account: int = DEFAULT_WAITING_PER_ACCOUNT


class Router:
    """One router replica. Several may consume the same inbound queue and share a store."""

    def __init__(
        self,
        options: RouterOptions,
        *,
        directory: Directory,
        pipeline: Pipeline,
        store: Store,
        extensions: Sequence[Extension] = (),
        live: LiveDirectory | None = None,
    ) -> None:
        """``extensions`` run beside the replica (tracking): their HTTP routes on its
        server, their background work as tasks stopped with it. ``live``: where the
        directory versions the operator applies are saved (by default kept in memory)."""
        self.options = options
        self.extensions = tuple(extensions)
        self.directory = directory
        self.pipeline = pipeline
        self.store = store
        self._tiers: tuple[Directory, dict[str, str]] = (directory, {})  # code → tier name
        self._connection: AbstractRobustConnection | None = None
        self._consume_channel: AbstractChannel | None = None
        self._envelopes: DirectConsumer | None = None  # the inbound queue's consumer
        self._chunk_channel: AbstractChannel | None = None
        self._notify_channel: AbstractChannel | None = None
        self._acks = Acknowledger()
        self._account = broker_login(options.amqp_url)  # the user_id of what it republishes
        self._attempts = itertools.count(1)
        self._publish_channel: AbstractChannel | None = None  # strong refs: robust channels
        self._exchanges: dict[str, AbstractExchange] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._consumer_tags: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self._http: HttpServer | None = None
        self._events = EventPublisher(self._publish_events)
        self._quarantine = Quarantine(keep_body_bytes=options.quarantine_body_bytes)
        self._parked = ParkedNotices(
            store=store,
            directory=lambda: self.directory,
            inbound_queues=(options.names.inbound_queue, options.names.chunk_queue),
            emit=self._emit,
            router_account=self._account,
        )
        self._background: list[asyncio.Task[None]] = []
        self._updates = DirectoryUpdates(
            lambda: self.directory,
            self._use_directory,
            live=live or LiveDirectory(),
            component="router",
        )
        self._versions_channel: AbstractChannel | None = None
        self._replica = uuid.uuid4().hex[:12]  # tells replicas apart in the chunk logs
        self._chunked = OpenDocuments(
            store=store,
            clock=utc_now,
            per_sender=options.max_open_chunked_per_sender,
            total=options.max_open_chunked,
            timeout=timedelta(seconds=options.chunked_timeout_seconds),
            hold=min(HOLD_SECONDS, options.chunk_header_wait_seconds),
        )
        self._waiting = WaitingChunks(
            per_account=options.max_waiting_chunks_per_account,
            wait=timedelta(seconds=options.chunk_header_wait_seconds),
            clock=utc_now,
        )

    def _use_directory(self, directory: Directory) -> None:
        """Take up an accepted version: each envelope reads the pipeline's reference once."""
        self.pipeline.use(directory)
        self.directory = directory

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        names = self.options.names
        self._connection = await aio_pika.connect_robust(
            self.options.amqp_url,
            client_properties={"connection_name": "vdx-router"},
            timeout=self.options.connect_timeout,
        )
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await apply_topology(
            self._publish_channel,
            self.directory,
            names,
            delivery_limit=self.options.delivery_limit
            if self.options.broker_delivery_limit
            else None,
        )
        for tier in self.directory.tiers.tiers:
            name = names.tier_exchange(tier)
            self._exchanges[name] = await self._publish_channel.get_exchange(name, ensure=False)
        for name in (names.events_exchange, names.dead_letter_exchange):
            self._exchanges[name] = await self._publish_channel.get_exchange(name, ensure=False)
        # Envelopes on a channel of their own: their acks go out in runs (``acks``), which
        # must cover no other consumer's deliveries.
        self._consume_channel = await self._connection.channel()
        await self._consume_channel.set_qos(prefetch_count=self.options.prefetch)
        # Chunks on a channel of their own: a few megabytes each, so a few at a time,
        # whatever the envelopes' prefetch.
        self._chunk_channel = await self._connection.channel()
        await self._chunk_channel.set_qos(prefetch_count=self.options.chunk_prefetch)
        self._notify_channel = await self._connection.channel()
        await self._notify_channel.set_qos(prefetch_count=16)
        # Every replica reads every version, and at start the one applied while it was down.
        self._versions_channel = await self._connection.channel()
        self._consumer_tags.append(
            await follow_versions(
                self._versions_channel, names, self._tracked(self._updates.on_version)
            )
        )
        # Envelopes through aiormq directly (``direct_consume``): the hot path.
        assert isinstance(self._consume_channel, AbstractRobustChannel)
        self._envelopes = DirectConsumer(
            self._consume_channel, names.inbound_queue, self._tracked(self._on_envelope)
        )
        await self._envelopes.start()
        for channel, queue_name, handler in (
            (self._chunk_channel, names.chunk_queue, self._on_chunk),
            (self._notify_channel, names.unroutable_notify, self._parked.on_unroutable),
            (self._notify_channel, names.dead_letter_notify, self._parked.on_dead_letter),
        ):
            # ensure=True: aio-pika restores consumers after a reconnect only for queues it
            # looked up (passively declared) itself.
            queue = await channel.get_queue(queue_name, ensure=True)
            tag = await queue.consume(self._tracked(handler))
            self._consumer_tags.append((queue, tag))
        if self.options.http_port is not None:
            self._http = HttpServer(
                make_app(
                    {
                        "broker": self._broker_problem,
                        "store": self._store_problem,
                        "revocation": self._revocation_problem,
                    },
                    title="vdx router",
                    routers=[route for ext in self.extensions for route in ext.routers()],
                ),
                host=self.options.http_host,
                port=self.options.http_port,
            )
            await self._http.start()
        # Read at each scrape (in this event loop), so chunks whose wait ended are not shown.
        metrics.CHUNKS_WAITING.set_function(self._waiting.__len__)
        self._background = [
            asyncio.create_task(ext.run(self._emit), name=type(ext).__name__)
            for ext in self.extensions
        ]
        log.info(
            "router.started",
            prefix=names.prefix,
            prefetch=self.options.prefetch,
            chunk_prefetch=self.options.chunk_prefetch,
            http_host=self.options.http_host,
            http_port=self.options.http_port,
        )

    @property
    def http_addresses(self) -> list[tuple[str, int]]:
        """Where its HTTP server listens (none when ``http_port`` is unset)."""
        return [] if self._http is None else self._http.addresses

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop consuming, finish what is in flight, close."""
        if self._envelopes is not None:
            try:
                await self._envelopes.stop()
            except Exception:  # the connection may already be gone; in-flight still drains
                log.warning("router.cancel_failed", queue=self._envelopes.queue)
        for queue, tag in self._consumer_tags:
            try:
                await queue.cancel(tag)
            except Exception:  # the connection may already be gone; in-flight still drains
                log.warning("router.cancel_failed", queue=queue.name)
        if self._in_flight:
            log.info("router.draining", in_flight=len(self._in_flight))
            await asyncio.wait(self._in_flight, timeout=timeout)
        await self._acks.drain()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
        await self.store.close()
        if self._http is not None:
            await self._http.stop()
        log.info("router.stopped")

    def _on_reconnect(self, *_: object) -> None:
        log.warning("router.reconnected")

    async def _broker_problem(self) -> str | None:
        if self._connection is None or self._connection.is_closed:
            return "not connected to the broker"
        return None

    async def _revocation_problem(self) -> str | None:
        gaps = self.pipeline.revocation_gaps()
        return "; ".join(gaps) if gaps else None

    async def _store_problem(self) -> str | None:
        await self.store.ping()
        return None

    def _tracked(self, handler: Callable[[_M], Awaitable[None]]) -> Callable[[_M], Awaitable[None]]:
        async def run(message: _M) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            try:
                await handler(message)
            finally:
                self._in_flight.discard(task)

        return run

    # -- the envelope path ---------------------------------------------------------------

    async def _on_envelope(self, message: Received) -> None:
        form = header_text(message, H_FORM)  # absent on the single-message form
        if form == FORM_CHUNK:
            await self._on_chunk(message)
            return
        self._acks.received(message)
        metrics.IN_FLIGHT.inc()
        started = time.perf_counter()
        # Its attempts so far and who published it: from the router's headers on a copy it
        # published again itself, else a first receipt (an agency's headers are ignored).
        attempts = read_attempts(message, router_account=self._account)
        claimed_id = verified_id = None
        try:
            # A copy after a failure: admitted once already, maybe half published.
            redelivered = bool(message.redelivered) or attempts.failed > 0
            if form == FORM_CHUNKED_HEADER:
                claimed_id = header_text(message, H_ENVELOPE)
                self._chunked.opening(claimed_id)  # its chunks wait for the verdict
                decision = await self.pipeline.evaluate_chunked_header(
                    message.body,
                    user_id=attempts.publisher,
                    admit=self._chunked.admit,
                    redelivered=redelivered,
                )
            else:
                decision = await self.pipeline.evaluate(
                    message.body, user_id=attempts.publisher, redelivered=redelivered
                )
            metrics.VALIDATION_SECONDS.observe(time.perf_counter() - started)
            header = decision.header
            if claimed_id is not None and header is not None:
                verified_id = header.envelope_id
            metrics.labelled(
                metrics.ENVELOPES_RECEIVED, str(header.kind) if header else "unknown"
            ).inc()
            if isinstance(decision, Route):
                await self._route(decision, message.body, attempts.publisher, form=form)
                metrics.ROUTING_SECONDS.observe(time.perf_counter() - started)
                if form == FORM_CHUNKED_HEADER and isinstance(decision.header, ChunkedHeader):
                    await self._chunked.opened(
                        decision.header, message.body, attempts.publisher, decision.plan
                    )
            elif isinstance(decision, Reject):
                await self._reject(decision, message, attempts.publisher)
            else:
                await self._duplicate(decision)
            self._acks.ack(message)
        except Exception as error:
            # A bug, the store or the broker failing: try again later, counted by the router
            # itself, so that an envelope that keeps failing is dead-lettered on any broker.
            log.exception(
                "router.processing_failed",
                delivery_tag=message.delivery_tag,
                redelivered=message.redelivered,
                attempt=attempts.failed + 1,
                delivery_limit=self.options.delivery_limit,
            )
            await self._failed(message, Attempts(attempts.failed + 1, attempts.publisher), error)
        finally:
            if claimed_id is not None:  # refused or failed: its chunks stop waiting
                self._chunked.not_opened(claimed_id)
                self._chunked.not_opened(verified_id)
            metrics.IN_FLIGHT.dec()

    async def _on_chunk(self, message: Received) -> None:
        """One chunk of a chunked document: checked against its routed header and
        forwarded to the header's recipients, or refused with a reason (the sender told)."""
        self._acks.received(message)
        metrics.IN_FLIGHT.inc()
        attempts = read_attempts(message, router_account=self._account)
        try:
            document: OpenDocument | None = None
            claimed: str | None = None  # the envelope id the chunk names, once read
            try:
                chunk = read_chunk(message.body, max_size=self.options.max_envelope_bytes)
                claimed = chunk.envelope_id
                since = waiting_since(message, router_account=self._account)
                # An account at its bound of waiting chunks: one look at the store, not a
                # hold of one of the few chunk_prefetch places.
                document = await self._chunked.find(
                    chunk.envelope_id,
                    hold=since is not None or self._waiting.has_room(attempts.publisher),
                )
                if document is None:
                    self._admit_waiting(chunk.envelope_id, chunk.index, attempts, since)
                    if await self._put_back(message, attempts, since):
                        return
                else:
                    self._waiting.found(attempts.publisher, chunk.envelope_id, chunk.index)
                if document is None:
                    raise ChunkError(
                        f"chunk {chunk.index} of envelope {chunk.envelope_id}: no header of "
                        "that envelope was routed within "
                        f"{self.options.chunk_header_wait_seconds:g} s (or it was forgotten "
                        f"after {self.options.chunked_timeout_seconds:g} s); send the header "
                        "first",
                        reason=Reason.CHUNK_FOREIGN,
                    )
                if attempts.publisher != document.publisher:
                    raise ChunkError(
                        f"chunk {chunk.index} of envelope {chunk.envelope_id} was published "
                        f"by account {attempts.publisher!r}, its header by "
                        f"{document.publisher!r}",
                        reason=Reason.PUBLISHER_MISMATCH,
                    )
                check_chunk(document.header, chunk)
            except BackboneError as error:
                header = document.header if document is not None else None
                refusal = Reject(error.reason, error.message, header, claimed_envelope_id=claimed)
                await self._reject(refusal, message, attempts.publisher)
                self._acks.ack(message)
                return
            if await self._chunked.has_passed(document, chunk.index):
                # Forwarded and confirmed already (the sender's resend, or a redelivery
                # after the store recorded it): the recipients have it.
                log.info(
                    "router.chunk_duplicate_dropped",
                    envelope_id=chunk.envelope_id,
                    chunk=chunk.index,
                    replica=self._replica,
                )
            else:
                again = bool(message.redelivered) or attempts.failed > 0
                await self._forward_chunk(document, chunk.index, message.body, again=again)
            self._acks.ack(message)
        except Exception as error:
            log.exception(
                "router.processing_failed",
                delivery_tag=message.delivery_tag,
                attempt=attempts.failed + 1,
                delivery_limit=self.options.delivery_limit,
            )
            await self._failed(
                message,
                Attempts(attempts.failed + 1, attempts.publisher),
                error,
                queue=self.options.names.chunk_queue,
            )
        finally:
            metrics.IN_FLIGHT.dec()

    def _admit_waiting(
        self, envelope_id: str, index: int, attempts: Attempts, since: datetime | None
    ) -> None:
        """Count a chunk of no known header, seen for the first time (``since`` None), as
        waiting for its publishing account, or refuse it (``too_many_waiting_chunks``) when
        the account has ``max_waiting_chunks_per_account`` waiting on this replica. A chunk
        put back already (here or by another replica) goes on waiting its time."""
        if since is None and not self._waiting.admit(attempts.publisher, envelope_id, index):
            metrics.CHUNKS_WAITING_REFUSED.inc()
            limit = self.options.max_waiting_chunks_per_account
            raise ChunkError(
                f"chunk {index} of envelope {envelope_id}: no header of that envelope is "
                f"routed, and account {attempts.publisher!r} already has {limit} chunks "
                f"waiting for their headers (the limit, max_waiting_chunks_per_account, is "
                f"{limit}); send each document's header first and its chunks once it is "
                "routed, then send this chunk again",
                reason=Reason.TOO_MANY_WAITING_CHUNKS,
            )

    async def _put_back(
        self, message: Received, attempts: Attempts, since: datetime | None
    ) -> bool:
        """Publish a chunk whose header is not routed yet again behind the chunk queue,
        marked with when it was first seen (``since``, None: now), and acknowledge it: True;
        False once it has waited ``chunk_header_wait_seconds`` (it is foreign). A chunk held
        instead would keep one of the few ``chunk_prefetch`` places from every other
        sender's chunks."""
        now = utc_now()
        since = since or now
        if now - since >= timedelta(seconds=self.options.chunk_header_wait_seconds):
            return False
        assert self._publish_channel is not None
        try:
            await self._publish_channel.default_exchange.publish(
                waiting_message(message.body, attempts, since, router_account=self._account),
                routing_key=self.options.names.chunk_queue,
                mandatory=True,
            )
        except Exception:
            log.exception("router.retry_publish_failed", attempts=attempts.failed)
            await self._acks.reject(message)
            return True
        self._acks.ack(message)
        return True

    async def _forward_chunk(
        self, document: OpenDocument, index: int, body: bytes, *, again: bool
    ) -> None:
        """Publish chunk ``index`` to the header's inboxes (``again``: maybe published
        before, by a replica that failed before recording it), then record it passed."""
        header = document.header
        refused = await self._publish_plan(
            document.plan, body, header, republished=again, form=FORM_CHUNK, index=index
        )
        if any(refused):
            # A chunk is not parked alone: it is tried again (up to the delivery limit)
            # while the recipient's inbox drains.
            raise RuntimeError(
                f"chunk {index} of envelope {header.envelope_id}: an inbox refused it (full)"
            )
        await self._chunked.passed(document, index)
        log.debug(
            "router.chunk_forwarded",
            envelope_id=header.envelope_id,
            sender=header.sender,
            chunk=index,
            replica=self._replica,
            outcome="routed",
        )

    async def _failed(
        self,
        message: Received,
        attempts: Attempts,
        error: BaseException,
        *,
        queue: str | None = None,
    ) -> None:
        """Publish the envelope again behind ``queue`` (by default the inbound queue; a
        chunk's is the chunk queue, where it is read as a chunk whatever its headers) with
        ``attempts`` (at the delivery limit: to the dead-letter exchange), then acknowledge
        this delivery; the publish is confirmed first, so the envelope is never lost. When
        that publish fails too (the broker), hand the delivery back to the broker: it comes
        back with its count as it was.
        """
        names = self.options.names
        queue = queue or names.inbound_queue
        assert self._publish_channel is not None
        try:
            if attempts.failed >= self.options.delivery_limit:
                await self._exchanges[names.dead_letter_exchange].publish(
                    dead_letter_message(
                        message.body, attempts, error, router_account=self._account
                    ),
                    routing_key=queue,
                    mandatory=True,
                )
                log.warning(
                    "router.poison",
                    attempts=attempts.failed,
                    publisher=attempts.publisher,
                    outcome="dead_lettered",
                )
            else:
                await self._publish_channel.default_exchange.publish(
                    retry_message(message.body, attempts, router_account=self._account),
                    routing_key=queue,
                    mandatory=True,
                )
        except Exception:
            log.exception("router.retry_publish_failed", attempts=attempts.failed)
            await self._acks.reject(message)
            return
        self._acks.ack(message)

    async def _route(
        self, decision: Route, body: bytes, publisher: str | None, *, form: str | None = None
    ) -> None:
        header = decision.header
        # The route is recorded before publishing (with the claim, ``Store.claim_route``), so
        # a recipient's status that comes straight back finds the document. A crash before
        # the confirms makes the broker redeliver the envelope, which is published again
        # (marked); recorded already, unless its earlier outcome was another one.
        if not decision.recorded:
            await self.store.record_routed(header, datetime.now(UTC), decision.routing)
        refused = await self._publish_plan(
            decision.plan, body, header, republished=decision.resumed, form=form
        )
        refused_keys = tuple(key for keys in refused for key in keys)
        held = recipients_of_keys(header, refused_keys)
        # A forwarded code's copy went to its heir's inbox: parked for the heir, whose key
        # the operator's later delivery publishes to, not lost for want of a header code.
        forwarded_to = {f.code: str(f.agency.organ_code) for f in decision.forwards}
        held_heirs = tuple(
            dict.fromkeys(
                heir
                for heir in forwarded_to.values()
                if OrganCode.parse(heir).routing_key in refused_keys and heir not in held
            )
        )
        if held or held_heirs:
            await self._park_held(body, header, held + held_heirs, publisher)
        self._count_routed(header)
        delivered = tuple(
            r for r in header.recipients if r not in held and forwarded_to.get(r) not in held_heirs
        )
        if delivered:
            await self._emit(
                Event.about(
                    EventType.ROUTED,
                    header,
                    recipients=delivered,
                    directory_version=decision.directory_version,
                )
            )
        if header.kind == Kind.STATUS:
            for event in status_events(header):
                await self._emit(event)
        await self._tell_of_change(decision)
        log.info(
            "router.routed",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipients=len(header.recipients),
            resumed=decision.resumed,
            directory_version=decision.directory_version,
            outcome="routed",
        )

    async def _tell_of_change(self, decision: Route) -> None:
        """Tell the sender the new address of each code forwarded, and that its own code has
        closed: it should change its address book (or its own code) before the window ends."""
        header = decision.header
        for forward in decision.forwards:
            new = str(forward.agency.organ_code)
            message = (
                f"{forward.code} is now {new} ({' → '.join((*forward.via, new))}): "
                f"forwarded to {new}; address {new} from now on"
            )
            await self._emit(
                Event.about(
                    EventType.FORWARDED,
                    header,
                    recipients=(new,),
                    message=message,
                    directory_version=decision.directory_version,
                )
            )
            log.info(
                "router.forwarded",
                envelope_id=header.envelope_id,
                sender=header.sender,
                code=forward.code,
                forwarded_to=new,
            )
        if decision.warning is not None:
            await self._emit(
                Event.about(
                    EventType.WARNED,
                    header,
                    reason=Reason.SENDER_CLOSED,
                    message=decision.warning,
                    directory_version=decision.directory_version,
                )
            )

    async def _publish_plan(
        self,
        plan: Mapping[str, tuple[str, ...]],
        body: bytes,
        header: EnvelopeHeader,
        *,
        republished: bool,
        form: str | None = None,
        index: int | None = None,
    ) -> Sequence[tuple[str, ...]]:
        """One publish per tier exchange of ``plan``, all at once; per exchange, the keys
        whose inbox refused the copy."""
        if len(plan) == 1:  # the usual case: no task and gathering future for one publish
            ((exchange, keys),) = plan.items()
            return (
                await self._publish_tier(
                    exchange, keys, body, header, republished=republished, form=form, index=index
                ),
            )
        return await asyncio.gather(
            *(
                self._publish_tier(
                    exchange, keys, body, header, republished=republished, form=form, index=index
                )
                for exchange, keys in plan.items()
            )
        )

    async def _publish_tier(
        self,
        exchange: str,
        keys: tuple[str, ...],
        body: bytes,
        header: EnvelopeHeader,
        *,
        republished: bool,
        form: str | None = None,
        index: int | None = None,
    ) -> tuple[str, ...]:
        """Publish once to ``exchange`` for ``keys``; the keys whose inbox refused the copy
        (at its bound: ``router.inbox_full``), none when every queue took it."""
        name = self._exchanges[exchange].name

        async def publish(key: str, properties: aiormq.spec.Basic.Properties) -> None:
            assert self._publish_channel is not None
            await direct_publish.publish(
                self._publish_channel, name, key, body, properties, mandatory=True
            )

        try:
            await publish(
                keys[0],
                self._properties(
                    header, cc=keys[1:], republished=republished, form=form, index=index
                ),
            )
            return ()
        except aio_pika.exceptions.DeliveryError as error:
            if not is_refused_by_a_queue(error):
                raise
        if len(keys) == 1:
            return keys

        # Which of them refused: once more to each alone, marked as a repeat, since the
        # inboxes that took the first copy drop this one (as after a crash).
        async def refuses(key: str) -> bool:
            try:
                await publish(
                    key, self._properties(header, cc=(), republished=True, form=form, index=index)
                )
            except aio_pika.exceptions.DeliveryError as error:
                if not is_refused_by_a_queue(error):
                    raise
                return True
            return False

        answers = await asyncio.gather(*(refuses(key) for key in keys))
        return tuple(key for key, refused in zip(keys, answers, strict=True) if refused)

    async def _park_held(
        self, body: bytes, header: EnvelopeHeader, held: tuple[str, ...], publisher: str | None
    ) -> None:
        """Park the copy ``held``'s full inboxes refused, straight into the dead-letter
        queue (not through its exchange: nothing needs the notice copy), confirmed before the
        sender is told and the envelope acknowledged."""
        assert self._publish_channel is not None
        await self._publish_channel.default_exchange.publish(
            held_message(body, header, held, publisher=publisher, router_account=self._account),
            routing_key=self.options.names.dead_letter_parked,
            mandatory=True,
        )
        metrics.INBOX_FULL.inc(len(held))
        await self._emit(
            Event.about(
                EventType.DEAD_LETTERED,
                header,
                reason=Reason.INBOX_FULL,
                recipients=held,
                message=f"not delivered to {', '.join(held)}: its inbox is full (its system "
                "has not fetched for a long time); kept in the dead-letter queue until the "
                "operator delivers it",
            )
        )
        log.warning(
            "router.inbox_full",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            held_for=list(held),
            outcome="parked",
        )

    def _tier_name(self, header: EnvelopeHeader | None) -> str:
        """The sender's tier for metric labels; "unknown" when no header could be read."""
        if header is None:
            return "unknown"
        return self._tier_of(header.sender)

    def _tier_of(self, code: str) -> str:
        return self.directory.tiers.tier_of(OrganCode.parse(code)).name

    def _routed_tier(self, code: str) -> str:
        """``_tier_of`` a code of a routed envelope, remembered per directory (a new version
        starts afresh): only codes the directory lists get here, so the memory is bounded."""
        directory, tiers = self._tiers
        if directory is not self.directory:
            directory, tiers = self._tiers = (self.directory, {})
        tier = tiers.get(code)
        if tier is None:
            tier = tiers[code] = directory.tiers.tier_of(OrganCode.parse(code)).name
        return tier

    def _count_routed(self, header: EnvelopeHeader) -> None:
        tier = self._routed_tier(header.sender)
        metrics.labelled(metrics.ENVELOPES_ROUTED, tier, str(header.kind)).inc()
        for recipient in header.recipients:
            metrics.labelled(metrics.DELIVERIES, self._routed_tier(recipient)).inc()
        if header.status_code is not None:
            metrics.labelled(metrics.STATUSES, header.status_code).inc()
        confirmed = datetime.now(UTC)
        metrics.END_TO_END_SECONDS.observe(max(0.0, (confirmed - header.created).total_seconds()))

    async def _reject(self, decision: Reject, message: Received, publisher: str | None) -> None:
        header = decision.header
        if decision.authenticated and header is not None:
            # Kept where the sender can always look it up (tracking): events queues are
            # bounded, and a refusal is a fact the store would otherwise not have. First, so
            # that a store failure requeues the envelope before anything else is done.
            await self.store.record_refusal(
                Refusal(
                    envelope_id=header.envelope_id,
                    document_id=header.document_id,
                    sender=header.sender,
                    kind=str(header.kind),
                    status_code=header.status_code,
                    reason=decision.reason.value,
                    message=decision.message,
                    at=utc_now(),
                )
            )
        metrics.ENVELOPES_REJECTED.labels(decision.reason.value, self._tier_name(header)).inc()
        assert self._publish_channel is not None
        await self._publish_channel.default_exchange.publish(
            await self._quarantine.message(decision, message.body, publisher=publisher),
            routing_key=self.options.names.quarantine_queue,
        )
        # Only an authenticated sender is told by name; otherwise the publisher is, so a forged
        # header cannot aim rejection events at another agency.
        party = party_to_tell(
            self.directory, header, publisher, authenticated=decision.authenticated
        )
        if decision.reason is Reason.RATE_LIMITED:
            metrics.RATE_LIMITED.labels(self._tier_of(party) if party else "unknown").inc()
        if party is not None:
            await self._emit(
                Event.about(
                    EventType.REJECTED,
                    header,
                    party=party,
                    reason=decision.reason,
                    message=decision.message,
                    directory_version=decision.directory_version,
                    **({} if header else {"envelope_id": decision.claimed_envelope_id}),
                )
            )
        log.info(
            "router.rejected",
            envelope_id=header.envelope_id if header else decision.claimed_envelope_id,
            document_id=header.document_id if header else None,
            sender=header.sender if header else None,
            publisher=publisher,
            reason=decision.reason.value,
            outcome="rejected",
        )

    async def _duplicate(self, decision: Duplicate) -> None:
        header = decision.header
        metrics.DUPLICATES.inc()
        await self._emit(
            Event.about(
                EventType.DUPLICATE,
                header,
                original_outcome=decision.outcome.value if decision.outcome else None,
                message=f"already processed as envelope {decision.original_envelope_id}",
                directory_version=decision.directory_version,
            )
        )
        log.info(
            "router.duplicate",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            original_envelope_id=decision.original_envelope_id,
            outcome="duplicate",
        )

    # -- helpers -------------------------------------------------------------------------

    def _properties(
        self,
        header: EnvelopeHeader,
        *,
        cc: tuple[str, ...],
        republished: bool,
        form: str | None = None,
        index: int | None = None,
    ) -> aiormq.spec.Basic.Properties:
        # Unique per publish attempt (returns are matched by it, per channel, so a count of
        # this process's publishes will do); the identity is in the headers.
        return envelope_properties(
            header,
            message_id=f"{header.envelope_id}/{next(self._attempts)}",
            cc=cc,
            republished=republished,
            form=form,
            chunk_index=index,
        )

    async def _emit(self, event: Event) -> None:
        names = self.options.names
        await self._events.emit(
            event, names.event_routing_key(event.type.value, OrganCode.parse(event.party))
        )

    async def _publish_events(self, routing_key: str, body: bytes, event_type: str) -> None:
        assert self._publish_channel is not None
        await direct_publish.publish(
            self._publish_channel,
            self._exchanges[self.options.names.events_exchange].name,
            routing_key,
            body,
            aiormq.spec.Basic.Properties(
                content_type="application/json",
                headers={},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
                priority=0,
                message_id=str(uuid.uuid4()),
                message_type=event_type,
            ),
            mandatory=False,
        )


async def start(router: Router) -> None:
    """Start ``router``; a broker that cannot be reached (refused, or whose TLS certificate
    does not verify, refuses the login) is a :class:`BrokerUnavailableError` saying which."""
    try:
        await router.start()
    except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
        with contextlib.suppress(Exception):
            await router.stop(timeout=1.0)
        raise broker_failure(error, "the router", router.options.amqp_url) from None
