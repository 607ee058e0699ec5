"""Sending: sealing edXML into an envelope (validate, XML-DSig sign, encrypt for every
recipient) and publishing it to the submit exchange with a publisher confirm.

Keep the :class:`~adapters.abc.Sealed` to retry after :class:`BrokerUnavailableError`: the
same bytes are answered as a duplicate by the router, never delivered twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import tempfile
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import aio_pika
import structlog
from cryptography import x509
from lxml import etree

from adapters.abc import BeforePublish, Receipt, Sealed
from adapters.config import AdapterConfig, ResolvedConfig, ServedIdentity
from adapters.connection import BrokerConnection
from adapters.pending_sends import PendingSend, PendingSends
from backbone.broker import direct_publish
from backbone.edxml import (
    DEFAULT_LIMITS,
    EdxmlDocument,
    EdxmlStatus,
    Examination,
    XmlLimits,
    examine,
    examine_parsed,
    parse_xml,
)
from backbone.envelope import (
    EnvelopeHeader,
    Kind,
    SealParties,
    read_frame,
    seal,
    status_note_of,
)
from backbone.envelope.split import ChunkKeeper, SealedDocument, seal_file
from backbone.errors import (
    BrokerUnavailableError,
    DirectoryError,
    DocumentTooLargeError,
    EnvelopeMalformedError,
    Reason,
    RoutingError,
    UnknownAgencyError,
)
from backbone.observability import metrics
from backbone.pki.validation import CertificateValidator
from backbone.wire import (
    FORM_CHUNK,
    FORM_CHUNKED_HEADER,
    Names,
    envelope_message,
    envelope_properties,
)
from backbone.xmldsig import sign_edxml
from backbone.xmldsig.document import Framing, sign_edxml_into

__all__ = ["EnvelopeSender"]

log = structlog.get_logger("adapters.client")

# Chunks of one document published and not yet confirmed, at most (4 MiB each by default).
CHUNK_WINDOW = 8


class EnvelopeSender:
    """Seals for the served agencies of ``resolved`` and publishes through ``broker``."""

    def __init__(
        self,
        config: AdapterConfig,
        resolved: ResolvedConfig,
        validator: CertificateValidator,
        names: Names,
        broker: BrokerConnection,
    ) -> None:
        self.config = config
        self._resolved = resolved
        self._validator = validator
        self._names = names
        self._broker = broker
        self._pending = PendingSends(config.staging_root() / "outgoing" / "pending")
        self._outgoing_swept = False

    @property
    def system(self) -> str:
        return self.config.system

    @property
    def served(self) -> tuple[str, ...]:
        return tuple(self._resolved.agencies)

    def seal(self, edxml: bytes, *, recipients: Sequence[str] | None = None) -> Sealed:
        """See :meth:`adapters.abc.Adapter.seal`. A document goes to its To agencies; a status
        to ``ResponseFor/OrganId`` (the original sender), except a status the original
        sender sends about its own document (13, take-back), which names no recipient in
        the edXML: pass ``recipients`` (where the document went) for it."""
        return self.seal_read(edxml, recipients=recipients)[0]

    def seal_read(
        self, edxml: bytes, *, recipients: Sequence[str] | None = None
    ) -> tuple[Sealed, EdxmlDocument | EdxmlStatus]:
        """:meth:`seal`, with the edXML as it was read (subject, notation…) beside it."""
        limit = self.config.max_envelope_bytes
        if len(edxml) > limit:  # the envelope is larger still: refuse before parsing
            raise _too_large(f"the edXML is {len(edxml)} bytes", limit)
        parties = self._parties(examine(edxml), recipients)
        signed = sign_edxml(
            edxml, parties.sender.key, parties.sender.certificate, tree=parties.tree
        )
        body = seal(signed, parties.seal_parties(), validator=self._validator)
        if len(body) > limit:
            # The router would refuse it, and RabbitMQ 4 would not even take it.
            raise _too_large(f"sealed, it is {len(body)} bytes", limit)
        header = read_frame(body, max_size=limit).header
        _log_sealed(header)
        return Sealed(header, body), parties.message

    def _parties(self, examined: Examination, recipients: Sequence[str] | None) -> _Parties:
        """The edXML validated (parsed once: the signature signs this tree), and who sends
        it to whom, as the envelope's header says."""
        message = examined.accepted()  # EdxmlError with line and path
        sender = self.identity(message.sender.organ_id)
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
            due_date, status_note = None, status_note_of(message.description)
        certificates = {code: self._recipient_certificate(code) for code in dict.fromkeys(targets)}
        return _Parties(
            message,
            examined.root,
            sender,
            kind,
            document_id,
            business_type,
            status_code,
            due_date,
            status_note,
            certificates,
        )

    async def send_chunked(
        self, edxml: bytes, *, before_publish: BeforePublish | None = None
    ) -> Receipt:
        """Send a document too large for one chunk (``chunk_bytes``) as a chunked envelope
        (docs/large-documents.md): validated and signed as :meth:`seal` does (the one
        parsed copy), written to the staging directory as it is serialised, sealed from
        there in chunks, then its header published and confirmed, and its chunks in order
        with a window of them awaiting their confirms (``CHUNK_WINDOW``).
        ``before_publish``: see :meth:`adapters.abc.Adapter.send_file`. The same bytes sent
        again after a crash finish the envelope begun (no new seal)."""
        limit = self.config.chunk_limits.max_document_bytes
        if len(edxml) > limit:
            raise _document_too_large(len(edxml), limit)
        key = f"bytes:{hashlib.sha256(edxml).hexdigest()}"
        pending = await asyncio.to_thread(self._pending.find, key, len(edxml))
        if pending is not None:
            return await self._publish_pending(pending)
        examined = examine(edxml, self._chunked_xml_limits())
        return await self._send_parsed(
            self._parties(examined, None),
            Framing.of(edxml, splice=True),
            before_publish,
            _Kept(key, len(edxml)),
            io.BytesIO(edxml),
        )

    def _chunked_xml_limits(self) -> XmlLimits:
        """A chunked document's XML is bounded in size by ``max_document_bytes``, not by
        the single message's limits (every other bound stays)."""
        return DEFAULT_LIMITS.admitting(self.config.chunk_limits.max_document_bytes)

    async def send_chunked_file(
        self,
        path: Path,
        *,
        before_publish: BeforePublish | None = None,
        resume_key: str | None = None,
    ) -> Receipt:
        """:meth:`send_chunked` for the edXML in the file at ``path``: refused by its size
        before it is read (``max_document_bytes``), then read once to be parsed; the bytes
        go as soon as they are parsed, leaving the one parsed copy the signature needs
        (``before_publish`` sees the model without its attachments' decoded content).
        A send of the same ``resume_key`` (by default: this path, as last modified) that
        stopped half-way is finished instead, its kept messages published again."""
        stat = await asyncio.to_thread(path.stat)
        limit = self.config.chunk_limits.max_document_bytes
        if stat.st_size > limit:
            raise _document_too_large(stat.st_size, limit)
        key = resume_key or f"file:{path.resolve()}:{stat.st_mtime_ns}"
        pending = await asyncio.to_thread(self._pending.find, key, stat.st_size)
        if pending is not None:
            return await self._publish_pending(pending)
        # Kept open: the signature is spliced into these bytes, read again from it (the
        # file's CRC-32 is held to the one parsed; another file put at ``path`` is not read).
        source = await asyncio.to_thread(path.open, "rb")
        try:
            edxml = await asyncio.to_thread(source.read)
            framing = Framing.of(edxml, splice=True)
            # The bytes go once parsed, before the model decodes the attachments: never both.
            root = await asyncio.to_thread(parse_xml, edxml, self._chunked_xml_limits())
            del edxml
            examined = await asyncio.to_thread(examine_parsed, root)
            del root
            parties = self._parties(examined, None).without_attachment_content()
            del examined
            kept = _Kept(key, stat.st_size)
            return await self._send_parsed(parties, framing, before_publish, kept, source)
        finally:
            await asyncio.to_thread(source.close)

    async def finish_kept(self, resume_key: str) -> Receipt | None:
        """Finish the send kept under ``resume_key`` that stopped half-way (a process since
        killed), without its source: None when none is kept."""
        pending = await asyncio.to_thread(self._pending.find, resume_key, None)
        return None if pending is None else await self._publish_pending(pending)

    async def _send_parsed(
        self,
        parties: _Parties,
        framing: Framing,
        before_publish: BeforePublish | None,
        kept: _Kept,
        original: BinaryIO,
    ) -> Receipt:
        assert parties.tree is not None  # examine() parsed it: the document was accepted
        limits = self.config.chunk_limits
        outgoing = self._outgoing()
        fd, name = tempfile.mkstemp(dir=outgoing, suffix=".xml")
        os.close(fd)
        path = Path(name)
        try:
            # The tree is ``original`` as parsed, unchanged: the signature may be spliced
            # into its bytes (nothing between the parse and here may change the tree).
            await asyncio.to_thread(
                sign_edxml_into,
                path,
                framing,
                parties.tree,
                parties.sender.key,
                parties.sender.certificate,
                original,
            )
            sealing = parties.seal_parties()

            def seal_keeping(keep: ChunkKeeper) -> SealedDocument:
                return seal_file(path, sealing, limits=limits, validator=self._validator, keep=keep)

            # Every message on disk before the first goes out, written as it is sealed (one
            # pass over the signed file): the key is dropped with the seal, and a restart
            # publishes these bytes again.
            pending = await asyncio.to_thread(self._pending.keep, kept.key, seal_keeping)
            _log_sealed(pending.header)
        finally:
            path.unlink(missing_ok=True)
        try:
            if before_publish is not None:
                await before_publish(pending.header, parties.message)
        except BaseException:
            await asyncio.to_thread(pending.discard)
            raise
        await asyncio.to_thread(self._pending.make_ready, kept.key, pending, kept.source_size)
        return await self._publish_pending(pending)

    async def _publish_pending(self, pending: PendingSend) -> Receipt:
        """The kept messages the broker has not confirmed yet, in order: the header
        confirmed first, then the chunks with up to ``CHUNK_WINDOW`` of them awaiting their
        confirm while the next is read (one confirm's round trip per chunk kept the broker
        idle most of the time; memory stays at most the window's messages). The kept count
        advances over the messages confirmed in order, so a restart publishes again at most
        the window; the first chunk the broker does not confirm ends the send with the
        others cancelled. The send is forgotten once the last is confirmed."""
        header = pending.header
        start = await asyncio.to_thread(pending.confirmed)
        if start:
            log.info(
                "adapter.send_resumed",
                envelope_id=header.envelope_id,
                document_id=header.document_id,
                sender=header.sender,
                confirmed=start,
                messages=pending.message_count,
                outcome="resumed",
            )
        if start == 0:
            body = await asyncio.to_thread(pending.message, 0)
            await self._publish_body(header, body, form=FORM_CHUNKED_HEADER)
            await asyncio.to_thread(pending.note_confirmed, 1)
            start = 1
        window = _ConfirmWindow(pending, start)
        try:
            for position in range(start, pending.message_count):
                if len(window) >= CHUNK_WINDOW:
                    await window.confirmed_some()
                body = await asyncio.to_thread(pending.message, position)
                window.add(
                    position,
                    self._publish_body(header, body, form=FORM_CHUNK, chunk_index=position - 1),
                )
                del body
            while len(window):
                await window.confirmed_some()
        finally:
            await window.cancel()
        await asyncio.to_thread(pending.discard)
        return self._published(header)

    def _outgoing(self) -> Path:
        """``staging_dir/outgoing``; at the first call, the signed files of seals a killed
        process left behind are deleted (a send kept in ``pending/`` needs none)."""
        outgoing = self.config.staging_root() / "outgoing"
        if not self._outgoing_swept:
            self._outgoing_swept = True  # before any await: no seal of this run began yet
            for leftover in outgoing.glob("*.xml"):
                leftover.unlink(missing_ok=True)
        outgoing.mkdir(parents=True, exist_ok=True)
        return outgoing

    async def publish(self, sealed: Sealed) -> Receipt:
        await self._publish_body(sealed.header, sealed.body)
        return self._published(sealed.header)

    async def _publish_body(
        self,
        header: EnvelopeHeader,
        body: bytes,
        *,
        form: str | None = None,
        chunk_index: int | None = None,
    ) -> None:
        submit, channel = self._broker.submit, self._broker.publish_channel
        if submit is None or channel is None:
            raise BrokerUnavailableError(f"adapter {self.system} is not started (or closed)")
        user_id = self._resolved.broker_account  # the broker refuses any other
        # Unique per attempt: returns are matched by message_id. Identity is in headers.
        message_id = f"{header.envelope_id}/{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        try:
            # No lock: confirms are matched per delivery tag, so many publishes fly at once.
            if form is None:  # a single message: its properties made once, through aiormq
                await direct_publish.publish(
                    channel,
                    submit.name,
                    self._names.submit_routing_key,
                    body,
                    envelope_properties(header, message_id=message_id, user_id=user_id),
                    mandatory=True,
                    timeout=self.config.publish_timeout,
                )
            else:
                await submit.publish(
                    envelope_message(
                        body,
                        header,
                        user_id=user_id,
                        message_id=message_id,
                        form=form,
                        chunk_index=chunk_index,
                    ),
                    # Chunks on a queue of their own, which the router takes a few at a time.
                    routing_key=self._names.submit_routing_key
                    if chunk_index is None
                    else self._names.chunk_routing_key,
                    mandatory=True,
                    timeout=self.config.publish_timeout,
                )
        except aio_pika.exceptions.PublishError:
            raise self._publish_failed(header, "the broker returned it: nothing is bound") from None
        except aio_pika.exceptions.DeliveryError:
            raise self._publish_failed(header, "the broker refused it (nack)") from None
        except (TimeoutError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as error:
            raise self._publish_failed(header, f"no confirm ({type(error).__name__})") from None
        metrics.ADAPTER_SEND_SECONDS.observe(time.perf_counter() - started)
        if chunk_index is None:
            metrics.ADAPTER_SENT.labels(str(header.kind)).inc()
            log.info(
                "adapter.published",
                envelope_id=header.envelope_id,
                document_id=header.document_id,
                sender=header.sender,
                form=form or "single",
                outcome="published",
            )

    def _published(self, header: EnvelopeHeader) -> Receipt:
        return Receipt(
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipients=tuple(header.recipients),
            sent_at=datetime.now(UTC),
        )

    def identity(self, code: str) -> ServedIdentity:
        identity = self._resolved.agencies.get(code)
        if identity is None:
            raise RoutingError(
                f"From {code} is not an agency this adapter ({self.system}) serves "
                f"(it serves {', '.join(self.served)}); it cannot sign or publish for it",
                reason=Reason.PUBLISHER_MISMATCH,
            )
        return identity

    def answering_agency(self, sender: str | None) -> str:
        if sender is not None:
            return self.identity(sender).organ_code
        if len(self._resolved.agencies) != 1:
            raise ValueError(
                f"adapter {self.system} serves {len(self.served)} agencies: say which one "
                "answers with sender="
            )
        return next(iter(self._resolved.agencies))

    def _recipient_certificate(self, code: str) -> x509.Certificate:
        try:
            agency = self._resolved.directory.agency(code)
        except UnknownAgencyError:
            # The router's reason for the same mistake: the sender's remedy is the same.
            raise UnknownAgencyError(
                f"recipient {code} is not in the directory: correct the recipient list",
                reason=Reason.RECIPIENT_UNKNOWN,
            ) from None
        pem = self._resolved.directory.certificate_pem(agency)
        if pem is None:
            raise DirectoryError(
                f"recipient {code} has no certificate in the directory: nothing to encrypt to"
            )
        try:
            return _loaded_certificate(pem)
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


@dataclass(frozen=True, slots=True)
class _Kept:
    """Under which key a large send is kept until confirmed, and its source's size."""

    key: str
    source_size: int


@dataclass(frozen=True, slots=True)
class _Parties:
    """A validated edXML and what its envelope's header says of it."""

    message: EdxmlDocument | EdxmlStatus
    tree: etree._Element | None  # the parsed edXML, signed in place (parsed once)
    sender: ServedIdentity
    kind: Kind
    document_id: str
    business_type: int | None
    status_code: str | None
    due_date: date | None
    status_note: str | None
    certificates: dict[str, x509.Certificate]

    def without_attachment_content(self) -> _Parties:
        """These parties with the model's attachments emptied of their decoded content: for
        a large document that content is as large as the file, and sealing needs only the
        header fields (the tree keeps the attachments, base64, for the signed file)."""
        message = self.message
        if not isinstance(message, EdxmlDocument):
            return self
        attachments = tuple(a.model_copy(update={"content": b""}) for a in message.attachments)
        return dataclasses.replace(
            self, message=message.model_copy(update={"attachments": attachments})
        )

    def seal_parties(self) -> SealParties:
        """What ``seal`` and ``seal_file`` take of these parties."""
        return SealParties(
            kind=self.kind,
            sender=self.sender.organ_code,
            sender_key=self.sender.key,
            sender_cert=self.sender.certificate,
            recipients=self.certificates,
            document_id=self.document_id,
            business_type=self.business_type,
            status_code=self.status_code,
            due_date=self.due_date,
            status_note=self.status_note,
            message=self.message,  # sealing refuses a header that disagrees with the edXML
        )


@lru_cache(maxsize=1024)
def _loaded_certificate(pem: bytes) -> x509.Certificate:
    """A recipient's certificate, parsed once per PEM: the directory's file is still read for
    every seal (a renewed certificate counts at once), and the validator still judges the
    certificate for every seal; only the parse of the same bytes is not repeated."""
    return x509.load_pem_x509_certificate(pem)


def _log_sealed(header: EnvelopeHeader) -> None:
    log.info(
        "adapter.sealed",
        envelope_id=header.envelope_id,
        document_id=header.document_id,
        sender=header.sender,
        recipients=len(header.recipients),
        kind=str(header.kind),
        outcome="sealed",
    )


def _document_too_large(size: int, limit: int) -> DocumentTooLargeError:
    return DocumentTooLargeError(
        f"the edXML is {size} bytes; the limit (max_document_bytes) is {limit}: split the "
        "document or ask the operator to raise the limit"
    )


def _too_large(what: str, limit: int) -> EnvelopeMalformedError:
    return EnvelopeMalformedError(
        f"{what}; envelopes are limited to {limit} bytes (max_envelope_bytes): compress the "
        "attachments or split the document",
        reason=Reason.ENVELOPE_TOO_LARGE,
    )


class _ConfirmWindow:
    """The chunk publishes of a kept send awaiting their confirm, by message position; the
    kept count of confirmed messages advances over those confirmed in order."""

    def __init__(self, pending: PendingSend, confirmed: int) -> None:
        self._pending = pending
        self._in_order = confirmed  # every message before this one is confirmed
        self._done: set[int] = set()
        self._waiting: dict[asyncio.Task[None], int] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, position: int, publish: Coroutine[Any, Any, None]) -> None:
        self._waiting[asyncio.create_task(publish)] = position

    async def confirmed_some(self) -> None:
        """Wait for at least one publish to be confirmed. The first one the broker did not
        confirm raises, once the publishes before it have settled: those confirmed are
        counted, so a resume publishes again as little as it can."""
        done, _ = await asyncio.wait(self._waiting, return_when=asyncio.FIRST_COMPLETED)
        failed = sorted((self._waiting[t], t) for t in done if _failed(t))
        if failed:
            first = failed[0][0]
            earlier = {t for t, p in self._waiting.items() if p < first and t not in done}
            if earlier:
                await asyncio.wait(earlier)
            done |= earlier
        for task in done:
            position = self._waiting.pop(task)
            if not _failed(task):
                self._done.add(position)
        advanced = self._in_order
        while advanced in self._done:
            self._done.remove(advanced)
            advanced += 1
        if advanced != self._in_order:
            self._in_order = advanced
            await asyncio.to_thread(self._pending.note_confirmed, advanced)
        if failed:
            failed[0][1].result()

    async def cancel(self) -> None:
        for task in self._waiting:
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)
        self._waiting.clear()


def _failed(task: asyncio.Task[None]) -> bool:
    return task.cancelled() or task.exception() is not None
