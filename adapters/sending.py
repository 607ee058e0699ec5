"""Sending: sealing edXML into an envelope (validate, XML-DSig sign, encrypt for every
recipient) and publishing it to the submit exchange with a publisher confirm.

Keep the :class:`~adapters.abc.Sealed` to retry after :class:`BrokerUnavailableError`: the
same bytes are answered as a duplicate by the router, never delivered twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
import structlog
from cryptography import x509

from adapters.abc import Receipt, Sealed
from adapters.config import AdapterConfig, ResolvedConfig, ServedIdentity
from adapters.connection import BrokerConnection
from backbone.edxml import EdxmlDocument, EdxmlStatus, examine
from backbone.envelope import EnvelopeHeader, Kind, read_frame, seal, status_note_of
from backbone.errors import (
    BrokerUnavailableError,
    DirectoryError,
    EnvelopeMalformedError,
    Reason,
    RoutingError,
    UnknownAgencyError,
)
from backbone.observability import metrics
from backbone.pki.validation import CertificateValidator
from backbone.wire import Names, envelope_message
from backbone.xmldsig import sign_edxml

__all__ = ["EnvelopeSender"]

log = structlog.get_logger("adapters.client")


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
        examined = examine(edxml)  # parsed once: the signature below signs this tree
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
        signed = sign_edxml(edxml, sender.key, sender.certificate, tree=examined.root)
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
            message=message,  # seal refuses a header that disagrees with the edXML
        )
        if len(body) > limit:
            # The router would refuse it, and RabbitMQ 4 would not even take it.
            raise _too_large(f"sealed, it is {len(body)} bytes", limit)
        header = read_frame(body, max_size=limit).header
        log.info(
            "adapter.sealed",
            envelope_id=header.envelope_id,
            document_id=header.document_id,
            sender=header.sender,
            recipients=len(header.recipients),
            kind=str(kind),
            outcome="sealed",
        )
        return Sealed(header, body), message

    async def publish(self, sealed: Sealed) -> Receipt:
        header = sealed.header
        submit = self._broker.submit
        if submit is None:
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
            await submit.publish(
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


def _too_large(what: str, limit: int) -> EnvelopeMalformedError:
    return EnvelopeMalformedError(
        f"{what}; envelopes are limited to {limit} bytes (max_envelope_bytes): compress the "
        "attachments or split the document",
        reason=Reason.ENVELOPE_TOO_LARGE,
    )
