"""The adapter client: the Python API an agency's software (or a hub) embeds.

    async with AdapterClient(AdapterConfig.load(path)) as client:
        receipt = await client.send(edxml_bytes)
        async for item in client.received():
            store_durably(item)              # then ask for the next item: that acks it

Sending: :meth:`~AdapterClient.seal` validates the edXML, signs it (XML-DSig) with the From
agency's key and encrypts it for every To agency (certificates from the directory, validated
for encryption); :meth:`~AdapterClient.publish` hands it to the broker with a publisher
confirm. Keep the :class:`Sealed` to retry after :class:`BrokerUnavailableError`: the same
bytes are answered as a duplicate by the router, never delivered twice.

Receiving and acknowledgement: :meth:`~AdapterClient.received` yields one :class:`Received`
per served recipient of each envelope. The AMQP message is acknowledged only when the
consumer has taken every item of it and asks for the next one, so a consumer that crashes
(or stops iterating) before that gets the message again. Delivery is therefore at least
once: durable deduplication is the caller's, by ``Received.envelope_id`` and ``recipient``
(the drop folder names its files by envelope id). The client itself drops redeliveries it
has already handed out, from a bounded in-memory set — a first line only, lost on restart.

Status 01 ("arrived"): with ``auto_arrival=True`` (the default) the client sends it for every
delivered *document* when the consumer asks for the next item — i.e. after the consumer has
stored it — and before the AMQP ack. Integrations that must write durably first and cannot
express that by "asking for the next item" (the drop folder does) pass ``auto_arrival=False``
and call :meth:`~AdapterClient.acknowledge_arrival` after their atomic write.

Refused content: an envelope whose header signature verifies but whose content a served
agency cannot accept (the key wrap does not open; the edXML is malformed, unsafe, invalid,
unsigned, or contradicts the signed header) is never yielded and never crashes the loop. It
is handed as a :class:`~adapters.abc.Refused` to ``keep_refused`` (the drop folder writes it
to ``rejected/``), the sender is told with status 02 whose Description starts with
``[<reason>]``, and the message is acknowledged. Without ``keep_refused`` the message is
dead-lettered instead, so it stays in the dead-letter queue for operators (unless another
served agency accepted the same envelope: its content, the same for all by the key
commitment, was then delivered, and the refusal is logged and answered). Envelopes that
are not authentic (framing, certificate, signature) cannot be answered (their sender is
only a claim): they are dead-lettered too, and so are statuses, which are never answered.

Ordering: the router processes envelopes concurrently, so statuses about one document may
arrive out of order. Order them by :func:`processing_order` (the edXML Timestamp, which has
whole seconds, then the status code's place in 01→06).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final, Self

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapters.abc import Receipt, Received, RefusalKeeper, Refused, Sealed
from adapters.config import AdapterConfig, ResolvedConfig, ServedIdentity
from backbone.broker.tls import connection_problem
from backbone.clock import VIETNAM, edxml_now
from backbone.directory import Directory
from backbone.edxml import (
    EdxmlDocument,
    EdxmlStatus,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusCode,
    build,
    validate,
)
from backbone.envelope import (
    MAX_STATUS_NOTE,
    EnvelopeHeader,
    Kind,
    VerifiedEnvelope,
    decrypt,
    read_header,
    seal,
    verify_frame,
)
from backbone.errors import (
    BackboneError,
    BrokerUnavailableError,
    DirectoryError,
    EnvelopeMalformedError,
    NotARecipientError,
    Reason,
    RevocationUnknownError,
    RoutingError,
    StoreUnavailableError,
)
from backbone.observability import metrics
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator
from backbone.wire import (
    H_DOCUMENT,
    H_ENVELOPE,
    H_REPUBLISHED,
    H_SENDER,
    Names,
    envelope_message,
    header_text,
)
from backbone.xmldsig import sign_edxml, verify_edxml

__all__ = ["AdapterClient", "processing_order"]

log = structlog.get_logger(__name__)

# Seconds to wait for the broker to answer a channel close on the way out.
_CLOSE_TIMEOUT = 5.0
# Envelopes up to this size are opened on the event loop, larger ones on the thread pool.
_INLINE_OPEN_BYTES = 256 * 1024

# The router's own header names (no "x-" prefix: RabbitMQ 3.13+ owns those).

SEEN_LIMIT: Final = 16_384  # (envelope id, recipient) pairs remembered against redeliveries
REFUSAL_NOTE_LIMIT: Final = 500  # characters of a status 02 Description


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

    message: AbstractIncomingMessage
    items: list[Received]


_Opened = tuple[list[Received], list[Refused]]
"""What :meth:`AdapterClient._open` makes of a message: items to hand out, and refusals."""


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A consumed message, and the opening of it already under way on the thread pool."""

    message: AbstractIncomingMessage
    opened: asyncio.Future[_Opened]


class AdapterClient:
    """Implements :class:`adapters.abc.Adapter`. Start it (or use ``async with``) before
    publishing or receiving. ``directory`` and ``validator`` override what the config would
    load (tests share one directory between processes' worth of adapters)."""

    def __init__(
        self,
        config: AdapterConfig,
        *,
        directory: Directory | None = None,
        validator: CertificateValidator | None = None,
        auto_arrival: bool = True,
        keep_refused: RefusalKeeper | None = None,
    ) -> None:
        self.config = config
        self.keep_refused = keep_refused  # where refused content is kept (module docstring)
        self._resolved: ResolvedConfig = config.resolve(directory)
        self._validator = validator if validator is not None else config.certificate_validator()
        self._names = Names(prefix=config.prefix)
        self.auto_arrival = auto_arrival
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None  # strong ref: robust channel
        self._submit: AbstractExchange | None = None
        self._consume_channels: set[AbstractChannel] = set()  # strong refs while consuming
        self._wakeups: set[asyncio.Queue[_Arrival | None]] = set()
        self._seen: OrderedDict[tuple[str, str], bool] = OrderedDict()  # → arrival sent
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def system(self) -> str:
        return self.config.system

    @property
    def directory(self) -> Directory:
        return self._resolved.directory

    @property
    def served(self) -> tuple[str, ...]:
        """Organ codes of the agencies this adapter acts for."""
        return tuple(self._resolved.agencies)

    async def start(self) -> None:
        """Check the served certificates, connect (robust) and open the publish channel."""
        for identity in self._resolved.agencies.values():
            # Fail at start, not at the first send, on an expired or revoked own certificate.
            self._validator.validate(
                identity.certificate, claimed=OrganCode.parse(identity.organ_code), usage="sign"
            )
            metrics.CERTIFICATE_NOT_AFTER.labels(identity.organ_code).set(
                identity.certificate.not_valid_after_utc.timestamp()
            )
        self._closing = False
        try:
            self._connection = await aio_pika.connect_robust(
                self.config.connection_url(),  # amqps://: the broker's certificate verified
                client_properties={"connection_name": f"vdx-adapter {self.system}"},
                reconnect_interval=self.config.reconnect_interval,
            )
            self._connection.reconnect_callbacks.add(self._on_reconnect)
            self._connection.close_callbacks.add(self._on_connection_lost)
            self._publish_channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._submit = await self._publish_channel.get_exchange(
                self._names.submit_exchange, ensure=False
            )
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
            await self.close()
            raise BrokerUnavailableError(
                f"adapter {self.system} cannot reach the broker: {connection_problem(error)}"
            ) from None
        log.info("adapter.started", system=self.system, served=len(self.served))

    async def close(self) -> None:
        self._closing = True
        for wakeup in self._wakeups:
            wakeup.put_nowait(None)  # ends received() iterators
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                await self._connection.close()
        self._connection = None
        self._publish_channel = None
        self._submit = None
        log.info("adapter.closed", system=self.system)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _on_reconnect(self, *_: object) -> None:
        metrics.ADAPTER_RECONNECTS.inc()
        log.warning("adapter.reconnected", system=self.system)

    async def broker_problem(self) -> str | None:
        """For readiness: None when connected to the broker, else what is wrong."""
        if self._connection is None or self._connection.is_closed:
            return f"adapter {self.system} is not connected to the broker"
        return None

    async def certificate_problem(self, *, warn_within: timedelta) -> str | None:
        """For readiness: None when every own certificate is valid for ``warn_within`` more."""
        soon = datetime.now(UTC) + warn_within
        for identity in self._resolved.agencies.values():
            code = OrganCode.parse(identity.organ_code)
            try:
                self._validator.validate(identity.certificate, claimed=code, usage="sign")
            except BackboneError as error:
                return error.message
            if identity.certificate.not_valid_after_utc < soon:
                return (
                    f"certificate of {code} expires on "
                    f"{identity.certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
                )
        return None

    def _on_connection_lost(self, *_: object) -> None:
        if not self._closing:  # robust: it reconnects on its own; publishes fail meanwhile
            log.warning("adapter.connection_lost", system=self.system)

    # -- sending --------------------------------------------------------------------------

    def seal(self, edxml: bytes, *, recipients: Sequence[str] | None = None) -> Sealed:
        """See :meth:`adapters.abc.Adapter.seal`. A document goes to its To agencies; a status
        to ``ResponseFor/OrganId`` (the original sender), except a status the original
        sender sends about its own document (13, take-back), which names no recipient in
        the edXML: pass ``recipients`` (where the document went) for it."""
        limit = self.config.max_envelope_bytes
        if len(edxml) > limit:  # the envelope is larger still: refuse before parsing
            raise _too_large(f"the edXML is {len(edxml)} bytes", limit)
        message = validate(edxml)  # EdxmlError with line and path
        sender = self._identity(message.sender.organ_id)
        if isinstance(message, EdxmlDocument):
            if recipients is not None:
                raise ValueError("a document goes to its To agencies: do not pass recipients")
            targets = [organ.organ_id for organ in message.recipients]
            kind, document_id = Kind.DOCUMENT, message.document_id
            business_type: int | None = int(message.business.business_doc_type)
            status_code: str | None = None
            due_date, status_note = message.due_date, None
        else:
            about = message.response_for.organ_id
            if about == sender.organ_code:
                if not recipients:
                    raise ValueError(
                        f"status {message.status_code.value} from {about} is about its own "
                        "document: pass recipients (the agencies the document went to)"
                    )
                targets = list(recipients)
            else:
                targets = [about]
            kind, document_id = Kind.STATUS, message.response_for.document_id
            business_type, status_code = None, message.status_code.value
            due_date, status_note = None, _note(message.description)
        certificates = {code: self._recipient_certificate(code) for code in dict.fromkeys(targets)}
        signed = sign_edxml(edxml, sender.key, sender.certificate)
        body = seal(
            signed,
            kind=kind,
            sender=sender.organ_code,
            sender_key=sender.key,
            sender_cert=sender.certificate,
            recipients=certificates,
            document_id=document_id,
            business_type=business_type,
            status_code=status_code,
            validator=self._validator,
            due_date=due_date,
            status_note=status_note,
        )
        if len(body) > limit:
            # The router would refuse it, and RabbitMQ 4 would not even take it.
            raise _too_large(f"sealed, it is {len(body)} bytes", limit)
        header = read_header(body, max_size=limit).header
        log.info(
            "adapter.sealed",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipients=len(header.recipients),
            kind=str(kind),
            outcome="sealed",
        )
        return Sealed(header, body)

    async def publish(self, sealed: Sealed) -> Receipt:
        header = sealed.header
        if self._submit is None:
            raise BrokerUnavailableError(f"adapter {self.system} is not started (or closed)")
        message = envelope_message(
            sealed.body,
            header,
            user_id=self._resolved.broker_account,  # the broker refuses any other
            # Unique per attempt: returns are matched by message_id. Identity is in headers.
            message_id=f"{header.envelope_id}/{uuid.uuid4().hex[:12]}",
        )
        started = time.perf_counter()
        try:
            # No lock: confirms are matched per delivery tag, so many publishes fly at once.
            await self._submit.publish(
                message,
                routing_key=self._names.submit_routing_key,
                mandatory=True,
                timeout=self.config.publish_timeout,
            )
        except aio_pika.exceptions.PublishError:
            raise self._publish_failed(header, "the broker returned it: nothing is bound") from None
        except aio_pika.exceptions.DeliveryError:
            raise self._publish_failed(header, "the broker refused it (nack)") from None
        except (TimeoutError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as error:
            raise self._publish_failed(header, f"no confirm ({type(error).__name__})") from None
        metrics.ADAPTER_SENT.labels(str(header.kind)).inc()
        metrics.ADAPTER_SEND_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "adapter.published",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            outcome="published",
        )
        return Receipt(
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipients=tuple(header.recipients),
            sent_at=datetime.now(UTC),
        )

    async def send(self, edxml: bytes) -> Receipt:
        return await self.publish(self.seal(edxml))

    def seal_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
        staff: StaffInfo | None = None,
    ) -> Sealed:
        """The status :meth:`send_status` sends, sealed but not published."""
        answering = self._answering_agency(sender)
        original_sender = _sender_of(document_id)
        status = EdxmlStatus(
            sender=Organization(organ_id=answering),
            response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
            status_code=StatusCode(code),
            timestamp=edxml_now(),
            staff_info=staff,
            description=description,
        )
        return self.seal(build(status))

    async def send_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
        staff: StaffInfo | None = None,
    ) -> Receipt:
        return await self.publish(
            self.seal_status(document_id, code, description, sender=sender, staff=staff)
        )

    async def request_take_back(
        self,
        document_id: str,
        recipients: Sequence[str],
        reason: str,
        *,
        staff: StaffInfo | None = None,
    ) -> Receipt:
        """Status 13: the original sender asks ``recipients`` to give a document back. They
        answer with 15 (agreed) or 16 (refused) through :meth:`send_status`."""
        original_sender = self._identity(_sender_of(document_id)).organ_code
        status = EdxmlStatus(
            sender=Organization(organ_id=original_sender),
            response_for=ResponseFor(organ_id=original_sender, document_id=document_id),
            status_code=StatusCode.TAKE_BACK_REQUESTED,
            timestamp=edxml_now(),
            staff_info=staff,
            description=reason,
        )
        return await self.publish(self.seal(build(status), recipients=recipients))

    async def acknowledge_arrival(self, received: Received) -> Receipt | None:
        """Send status 01 (arrived) for a delivered document, from the agency it was for.
        Statuses are never answered: returns None for them."""
        if not isinstance(received.message, EdxmlDocument):
            return None
        receipt = await self.send_status(
            received.message.document_id, StatusCode.ARRIVED, sender=received.recipient
        )
        key = (received.envelope_id, received.recipient)
        if key in self._seen:
            self._seen[key] = True
        return receipt

    def set_refusal_keeper(self, keeper: RefusalKeeper | None) -> None:
        """See :meth:`adapters.abc.Adapter.set_refusal_keeper` (``keep_refused=``)."""
        self.keep_refused = keeper

    # -- receiving ------------------------------------------------------------------------

    async def received(self) -> AsyncGenerator[Received, None]:
        """Documents and statuses for the served agencies, as they arrive (module docstring:
        acknowledgement, redeliveries, status 01, ordering)."""
        if self._connection is None:
            raise BrokerUnavailableError(f"adapter {self.system} is not started (or closed)")
        inbox = self._names.inbox_queue(self.system)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.config.prefetch)
        try:
            # ensure=True (a passive declare) registers the queue with the robust channel,
            # which then restores the consumer after a reconnect; ensure=False would not.
            queue = await channel.get_queue(inbox, ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise BrokerUnavailableError(
                f"inbox queue {inbox} does not exist: the router has not declared the topology "
                f"for {self.system} (or the prefix {self.config.prefix!r} is wrong)"
            ) from None
        wakeup: asyncio.Queue[_Arrival | None] = asyncio.Queue()
        self._consume_channels.add(channel)
        self._wakeups.add(wakeup)
        opening: set[asyncio.Future[_Opened]] = set()

        async def enqueue(message: AbstractIncomingMessage) -> None:
            # Opened as it arrives, while earlier items are still being handed out (which
            # stays in arrival order).
            opened = self._start_opening(message.body)
            opening.add(opened)
            opened.add_done_callback(opening.discard)
            await wakeup.put(_Arrival(message, opened))

        await queue.consume(enqueue)
        try:
            while (arrival := await wakeup.get()) is not None:
                message = arrival.message
                pending = await self._unpack(message, arrival.opened)
                if pending is None:
                    continue
                settled = True
                for item in pending.items:
                    metrics.ADAPTER_RECEIVED.labels(str(item.header.kind)).inc()
                    yield item
                    # The consumer asked for the next item: it has handled this one.
                    if not await self._taken(item, message):
                        settled = False
                        break
                if settled:
                    await _settle(message, ack=True)
        finally:
            self._wakeups.discard(wakeup)
            for opened in opening:  # not handed out: their messages go back to the queue
                opened.cancel()
            # Closing the channel hands every unacked message back to the broker. After a
            # network cut the broker may never answer the close: don't wait for it forever
            # (the connection's loss hands them back as well).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), timeout=_CLOSE_TIMEOUT)
            self._consume_channels.discard(channel)

    async def _taken(self, item: Received, message: AbstractIncomingMessage) -> bool:
        """Remember ``item`` as handled; send its status 01 if due. False when the message
        must go back to the queue (the status could not be sent)."""
        key = (item.envelope_id, item.recipient)
        self._remember(key, arrived=not isinstance(item.message, EdxmlDocument))
        if not self.auto_arrival or self._seen.get(key, True):
            return True
        try:
            await self.acknowledge_arrival(item)
        except BackboneError as error:
            log.warning(
                "adapter.arrival_failed",
                envelope_id=item.envelope_id,
                document_id=item.header.document_id,
                sender=item.header.sender,
                recipient=item.recipient,
                reason=error.reason.value,
                outcome="requeued",
            )
            await _settle(message, ack=False, requeue=True)
            return False
        return True

    def _remember(self, key: tuple[str, str], *, arrived: bool) -> None:
        self._seen[key] = self._seen.get(key, False) or arrived
        self._seen.move_to_end(key)
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    async def _unpack(
        self, message: AbstractIncomingMessage, opened: Awaitable[_Opened]
    ) -> _Pending | None:
        """Judge one AMQP message as ``opened`` (:meth:`_open` on it); None when it was
        settled here (rejected, or a duplicate acknowledged)."""
        try:
            items, refusals = await opened
        except (RevocationUnknownError, StoreUnavailableError) as error:
            # Configuration that can be fixed (a fresh CRL): try again, up to the inbox's
            # delivery limit, after which the broker dead-letters it.
            self._log_refused(message, error, outcome="requeued")
            await _settle(message, ack=False, requeue=True)
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
            await _settle(message, ack=False, requeue=True)
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
            await _settle(message, ack=keep)
            return None
        return _Pending(message, fresh)

    async def _refuse(self, refusal: Refused, message: AbstractIncomingMessage) -> bool:
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
        if self._seen.get(key):
            log.info("adapter.refusal_repeated", **fields, outcome="duplicate")
            return True
        try:
            if self.keep_refused is not None:
                await self.keep_refused(refusal)
            answered = await self._answer_refusal(refusal)
        except Exception as error:
            log.warning(
                "adapter.refusal_pending",
                **fields,
                error=f"{type(error).__name__}: {error}",
                outcome="requeued",
            )
            await _settle(message, ack=False, requeue=True)
            return False
        metrics.ADAPTER_RECEIVE_FAILURES.labels(refusal.reason.value).inc()
        log.error(
            "adapter.content_refused",
            **fields,
            error=refusal.message,
            kept="keeper" if self.keep_refused is not None else "dead_letter",
            outcome="status_02" if answered else "refused",
        )
        self._remember(key, arrived=True)
        return True

    async def _answer_refusal(self, refusal: Refused) -> bool:
        """Status 02 from the refusing agency to the envelope's (authenticated) sender, with
        the reason. Raises BrokerUnavailableError (retry later); False when no answer is
        possible: a status is never answered, and a DocumentId that cannot be put in a
        status is logged instead."""
        header = refusal.header
        if header.kind != Kind.DOCUMENT:
            return False
        try:
            status = EdxmlStatus(
                sender=Organization(organ_id=refusal.recipient),
                response_for=ResponseFor(organ_id=header.sender, document_id=header.document_id),
                status_code=StatusCode.REJECTED,
                timestamp=edxml_now(),
                description=_refusal_note(refusal),
            )
            sealed = self.seal(build(status))
        except (BackboneError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            log.error(
                "adapter.refusal_unanswerable",
                envelope_id=header.envelope_id,
                sender=header.sender,
                recipient=refusal.recipient,
                reason=getattr(getattr(error, "reason", None), "value", "invalid_status"),
                error=str(error),
                outcome="not_answered",
            )
            return False
        await self.publish(sealed)  # BrokerUnavailableError: the caller requeues
        return True

    def _start_opening(self, body: bytes) -> asyncio.Future[_Opened]:
        """:meth:`_open` on ``body``: at once for an envelope up to ``_INLINE_OPEN_BYTES``,
        on the thread pool for a larger one, so a big attachment does not hold up the event
        loop. A small one costs about a millisecond of CPU here; on the thread pool the GIL
        hand-offs between threads doubled that (bench/OPTIMISATIONS.md)."""
        if len(body) > _INLINE_OPEN_BYTES:
            return asyncio.ensure_future(asyncio.to_thread(self._open, body))
        opened: asyncio.Future[_Opened] = asyncio.get_running_loop().create_future()
        try:
            opened.set_result(self._open(body))
        except Exception as error:  # judged by _unpack, as from the thread pool
            opened.set_exception(error)
        return opened

    def _open(self, body: bytes) -> _Opened:
        """Verify the envelope, then decrypt and verify for each served recipient. Raises
        when the envelope is not authentic, not for us, or cannot be judged now (revocation
        status unknown); content a recipient refuses is returned as a :class:`Refused`."""
        frame = read_header(body, max_size=self.config.max_envelope_bytes)
        envelope = verify_frame(frame, self._validator)  # never trust the broker or router
        header = envelope.header
        ours = [code for code in header.recipients if code in self._resolved.agencies]
        if not ours:
            raise NotARecipientError(
                f"envelope {header.envelope_id} is for {', '.join(header.recipients)}; "
                f"{self.system} serves none of them"
            )
        items: list[Received] = []
        refusals: list[Refused] = []
        for code in ours:
            opened = self._open_for(envelope, self._resolved.agencies[code], body)
            if isinstance(opened, Received):
                items.append(opened)
            else:
                refusals.append(opened)
        return items, refusals

    def _open_for(
        self, envelope: VerifiedEnvelope, identity: ServedIdentity, body: bytes
    ) -> Received | Refused:
        header = envelope.header
        plaintext: bytes | None = None
        try:
            opened = decrypt(envelope, recipient=identity.organ_code, recipient_key=identity.key)
            plaintext = opened.edxml
            verified = verify_edxml(plaintext, self._validator, OrganCode.parse(header.sender))
            # The model is read from the signed canonical bytes: nothing unsigned gets in.
            message = validate(verified.signed_data)
            _check_matches(header, message, identity.organ_code)
        except (RevocationUnknownError, StoreUnavailableError):
            raise  # not a verdict on the content: try again later
        except BackboneError as error:
            # The header is authentic (verify_frame), so its sender is the one to tell.
            return Refused(
                header=header,
                recipient=identity.organ_code,
                reason=error.reason,
                message=error.message,
                body=body,
                edxml=plaintext,
                refused_at=datetime.now(UTC),
            )
        return Received(
            header=header,
            recipient=identity.organ_code,
            edxml=opened.edxml,
            message=message,
            signer_certificate_pem=verified.certificate.certificate.public_bytes(
                serialization.Encoding.PEM
            ).decode("ascii"),
            received_at=datetime.now(UTC),
        )

    def _log_refused(
        self, message: AbstractIncomingMessage, error: BackboneError, *, outcome: str
    ) -> None:
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

    # -- helpers --------------------------------------------------------------------------

    def _identity(self, code: str) -> ServedIdentity:
        identity = self._resolved.agencies.get(code)
        if identity is None:
            raise RoutingError(
                f"From {code} is not an agency this adapter ({self.system}) serves "
                f"(it serves {', '.join(self.served)}); it cannot sign or publish for it",
                reason=Reason.PUBLISHER_MISMATCH,
            )
        return identity

    def _answering_agency(self, sender: str | None) -> str:
        if sender is not None:
            return self._identity(sender).organ_code
        if len(self._resolved.agencies) != 1:
            raise ValueError(
                f"adapter {self.system} serves {len(self.served)} agencies: say which one "
                "answers with sender="
            )
        return next(iter(self._resolved.agencies))

    def _recipient_certificate(self, code: str) -> x509.Certificate:
        agency = self.directory.agency(code)  # UnknownAgencyError names the code
        pem = self.directory.certificate_pem(agency)
        if pem is None:
            raise DirectoryError(
                f"recipient {code} has no certificate in the directory: nothing to encrypt to"
            )
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise DirectoryError(
                f"recipient {code}'s certificate in the directory is not a PEM certificate"
            ) from None

    def _publish_failed(self, header: EnvelopeHeader, why: str) -> BrokerUnavailableError:
        metrics.ADAPTER_SEND_FAILURES.labels(BrokerUnavailableError.reason.value).inc()
        log.error(
            "adapter.publish_failed",
            system=self.system,
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            error=why,
            outcome="not_published",
        )
        return BrokerUnavailableError(
            f"envelope {header.envelope_id} was not accepted by the broker: {why}; publish "
            "the same Sealed again"
        )


def _note(description: str | None) -> str | None:
    """A status's Description as the header's ``status_note``: stripped, cut to its limit."""
    text = (description or "").strip()
    return text[:MAX_STATUS_NOTE] or None


def _sender_of(document_id: str) -> str:
    """The original sender's organ code: DocumentId is ``<OrganId>,<date>,<number>``."""
    head = document_id.split(",", 1)[0].strip()
    return str(OrganCode.parse(head))


def _too_large(what: str, limit: int) -> EnvelopeMalformedError:
    return EnvelopeMalformedError(
        f"{what}; envelopes are limited to {limit} bytes (max_envelope_bytes): compress the "
        "attachments or split the document",
        reason=Reason.ENVELOPE_TOO_LARGE,
    )


def _refusal_note(refusal: Refused) -> str:
    """Status 02's Description: the reason code first, so software can act on it."""
    note = f"[{refusal.reason.value}] {refusal.message}"
    return note if len(note) <= REFUSAL_NOTE_LIMIT else note[: REFUSAL_NOTE_LIMIT - 1] + "…"


def _check_matches(
    header: EnvelopeHeader, message: EdxmlDocument | EdxmlStatus, recipient: str
) -> None:
    """The signed edXML must say what the signed envelope header says."""
    if message.sender.organ_id != header.sender:
        raise EnvelopeMalformedError(
            f"edXML From is {message.sender.organ_id}, the envelope's sender is {header.sender}"
        )
    if str(message.kind) != str(header.kind):
        raise EnvelopeMalformedError(
            f"the envelope says {header.kind}, the edXML is a {message.kind}"
        )
    document_id = (
        message.document_id
        if isinstance(message, EdxmlDocument)
        else message.response_for.document_id
    )
    if document_id != header.document_id:
        raise EnvelopeMalformedError(
            f"edXML DocumentId {document_id!r} differs from the envelope's {header.document_id!r}"
        )
    if isinstance(message, EdxmlDocument) and recipient not in {
        organ.organ_id for organ in message.recipients
    }:
        raise EnvelopeMalformedError(f"{recipient} is not among the edXML's To")
    if isinstance(message, EdxmlDocument) and header.due_date not in (None, message.due_date):
        raise EnvelopeMalformedError(
            f"edXML DueDate {message.due_date} differs from the envelope's {header.due_date}"
        )


async def _settle(message: AbstractIncomingMessage, *, ack: bool, requeue: bool = False) -> None:
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
