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

What became of what was sent: :meth:`~AdapterClient.events` yields the router's events
about the served agencies' envelopes (``rejected`` with its reason, ``duplicate``,
``unroutable``, ``dead_lettered``, ``routed``, ``status``, ``overdue``) from the system's own
events queue, acknowledging each message only when the consumer asks for the next event
(:mod:`adapters.events`). Iterate it for as long as the client runs (the drop folder does):
until something does, events wait in the queue, and a refusal is known to nobody but the
logs of the router.

Ordering: the router processes envelopes concurrently, so statuses about one document may
arrive out of order; and the client hands each envelope out as soon as it is opened, so a
large (or hostile) envelope does not hold up the ones behind it (:mod:`adapters.receiving`
tells each envelope's memory and time budget). Order them by :func:`processing_order` (the
edXML Timestamp, which has whole seconds, then the status code's place in 01→06).

The client is composed of one piece per job: :mod:`adapters.connection` (the broker
connection), :mod:`adapters.sending` (seal and publish), :mod:`adapters.statuses` (statuses,
the automatic 01, refusal 02), :mod:`adapters.receiving` (the receive loop and acks),
:mod:`adapters.events` (the events about what was sent),
:mod:`adapters.opening` (from an AMQP body to items and refusals, pure) and
:mod:`adapters.redeliveries` (what was handed out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from adapters.abc import BeforePublish, Receipt, Received, RefusalKeeper, Sealed
from adapters.chunked_inbox import ChunkedInbox
from adapters.config import AdapterConfig, ResolvedConfig
from adapters.connection import BrokerConnection
from adapters.events import EventConsumer
from adapters.opening import EnvelopeOpener
from adapters.receiving import InboxConsumer, processing_order
from adapters.redeliveries import DeliveredMemory
from adapters.sending import EnvelopeSender
from adapters.served_changes import warn_served_changes
from adapters.statuses import StatusSender
from backbone.broker.directory_versions import DirectoryUpdates, LiveDirectory
from backbone.clock import Clock, utc_now
from backbone.directory import Directory
from backbone.edxml import EdxmlDocument, EdxmlStatus, StaffInfo, StatusCode
from backbone.envelope.chunked import travels_chunked
from backbone.errors import BackboneError
from backbone.observability import metrics
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator
from backbone.wire import Event, Names

__all__ = ["AdapterClient", "processing_order"]

log = structlog.get_logger(__name__)


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
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self._chunk_limits = config.chunk_limits  # ConfigurationError naming the key
        self._resolved: ResolvedConfig = config.resolve(directory)
        self._validator = validator if validator is not None else config.certificate_validator()
        names = Names(prefix=config.prefix)
        memory = DeliveredMemory()
        self._broker = BrokerConnection(config, names)
        self._sender = EnvelopeSender(config, self._resolved, self._validator, names, self._broker)
        self._statuses = StatusSender(self._sender, memory)
        opener = EnvelopeOpener(
            self._resolved.agencies,
            self._validator,
            max_envelope_bytes=config.max_envelope_bytes,
            system=config.system,
            # Which served agency took over a closed code, in the version running now.
            directory=lambda: self._resolved.directory,
            inherited=self._resolved.inherited,
            max_document_bytes=self._chunk_limits.max_document_bytes,
        )
        self._clock = clock
        self._chunked = ChunkedInbox(config, opener, self._validator, clock)
        self._inbox = InboxConsumer(
            config,
            names,
            self._broker,
            opener,
            self._statuses,
            memory,
            auto_arrival=auto_arrival,
            keep_refused=keep_refused,  # where refused content is kept (module docstring)
            chunked=self._chunked,
            served=tuple(self._resolved.agencies),
        )
        self._events = EventConsumer(config, names, self._broker, self._resolved.agencies)
        # The versions the operator applies, taken up live as the routers do; saved over
        # the configured file (unless the directory was handed in).
        self._updates = DirectoryUpdates(
            lambda: self._resolved.directory,
            self._use_directory,
            live=LiveDirectory(config.directory if directory is None else None),
            component="adapter",
        )

    @property
    def auto_arrival(self) -> bool:
        return self._inbox.auto_arrival

    @auto_arrival.setter
    def auto_arrival(self, value: bool) -> None:
        self._inbox.auto_arrival = value

    @property
    def keep_refused(self) -> RefusalKeeper | None:
        return self._inbox.keep_refused

    @keep_refused.setter
    def keep_refused(self, keeper: RefusalKeeper | None) -> None:
        self._inbox.keep_refused = keeper

    def set_refusal_keeper(self, keeper: RefusalKeeper | None) -> None:
        """See :meth:`adapters.abc.Adapter.set_refusal_keeper` (``keep_refused=``)."""
        self.keep_refused = keeper

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def system(self) -> str:
        return self.config.system

    @property
    def directory(self) -> Directory:
        return self._resolved.directory

    def _use_directory(self, directory: Directory) -> None:
        """Take up an accepted version: sending, the gateway's lists and the drop folder
        read it from now on. A served agency it gives to another system, closes or recodes
        is named in one warning (:mod:`adapters.served_changes`)."""
        warn_served_changes(
            self._resolved.directory,
            directory,
            self._resolved.agencies,
            system=self.system,
            at=self._clock(),
        )
        self._resolved.directory = directory

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
        self._chunked.claim()  # ConfigurationError: another process stages there
        try:
            await self._broker.open()
            await self._broker.follow_versions(self._updates.on_version)
        except BackboneError:
            await self.close()
            raise
        log.info("adapter.started", system=self.system, served=len(self.served))

    async def close(self) -> None:
        self._inbox.end_iterators()  # ends received() iterators
        self._events.end_iterators()  # and events() iterators
        await self._broker.close()
        self._chunked.release()
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

    async def broker_problem(self) -> str | None:
        """For readiness: None when connected to the broker, else what is wrong."""
        return self._broker.problem()

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

    # -- sending --------------------------------------------------------------------------

    def seal(self, edxml: bytes, *, recipients: Sequence[str] | None = None) -> Sealed:
        """See :meth:`adapters.abc.Adapter.seal`. A document goes to its To agencies; a status
        to ``ResponseFor/OrganId`` (the original sender), except a status the original
        sender sends about its own document (13, take-back), which names no recipient in
        the edXML: pass ``recipients`` (where the document went) for it."""
        return self._sender.seal(edxml, recipients=recipients)

    def seal_read(
        self, edxml: bytes, *, recipients: Sequence[str] | None = None
    ) -> tuple[Sealed, EdxmlDocument | EdxmlStatus]:
        """:meth:`seal`, with the edXML as it was read beside the envelope."""
        return self._sender.seal_read(edxml, recipients=recipients)

    async def publish(self, sealed: Sealed) -> Receipt:
        return await self._sender.publish(sealed)

    async def send(self, edxml: bytes) -> Receipt:
        """Seal and publish; a document larger than one chunk (``chunk_bytes``) travels as
        a chunked envelope (docs/large-documents.md), published header first."""
        if travels_chunked(len(edxml), self._chunk_limits):
            return await self._sender.send_chunked(edxml)
        return await self.publish(self.seal(edxml))

    def travels_chunked(self, size: int) -> bool:
        """Whether an edXML of ``size`` bytes travels as a chunked envelope."""
        return travels_chunked(size, self._chunk_limits)

    async def send_file(
        self,
        path: Path,
        *,
        before_publish: BeforePublish | None = None,
        resume_key: str | None = None,
    ) -> Receipt:
        """:meth:`send` for the edXML in the file at ``path``; a file larger than one chunk
        is refused by its size (``max_document_bytes``) before it is read, then read once
        and sent in chunks. ``before_publish``, ``resume_key``: see
        :meth:`adapters.abc.Adapter.send_file`."""
        size = (await asyncio.to_thread(path.stat)).st_size
        if self.travels_chunked(size):
            return await self._sender.send_chunked_file(
                path, before_publish=before_publish, resume_key=resume_key
            )
        sealed, message = self.seal_read(await asyncio.to_thread(path.read_bytes))
        if before_publish is not None:
            await before_publish(sealed.header, message)
        return await self.publish(sealed)

    async def finish_kept(self, resume_key: str) -> Receipt | None:
        """Finish a large send of ``resume_key`` (see :meth:`send_file`) that a killed
        process left half-way, from the messages kept in the staging directory alone:
        its receipt, or None when no such send is kept. Raises
        :class:`BrokerUnavailableError` as :meth:`send_file` does (the send stays kept)."""
        return await self._sender.finish_kept(resume_key)

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
        return self._statuses.seal_status(
            document_id, code, description, sender=sender, staff=staff
        )

    async def send_status(
        self,
        document_id: str,
        code: StatusCode,
        description: str | None = None,
        *,
        sender: str | None = None,
        staff: StaffInfo | None = None,
    ) -> Receipt:
        return await self._statuses.send_status(
            document_id, code, description, sender=sender, staff=staff
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
        return await self._statuses.request_take_back(document_id, recipients, reason, staff=staff)

    async def acknowledge_arrival(self, received: Received) -> Receipt | None:
        """Send status 01 (arrived) for a delivered document, from the agency it was for.
        Statuses are never answered: returns None for them."""
        return await self._statuses.acknowledge_arrival(received)

    # -- receiving ------------------------------------------------------------------------

    def received(self) -> AsyncGenerator[Received, None]:
        """Documents and statuses for the served agencies, as they arrive (module docstring:
        acknowledgement, redeliveries, status 01, ordering)."""
        return self._inbox.received()

    def events(self) -> AsyncGenerator[Event, None]:
        """The router's events about what the served agencies sent, as they arrive (module
        docstring; :meth:`adapters.abc.Adapter.events`)."""
        return self._events.events()
