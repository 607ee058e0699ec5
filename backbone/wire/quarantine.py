"""What the quarantine queue keeps of a refused envelope (docs/topology.md, "Quarantine").

A refused envelope small enough and readable enough to help an operator is kept whole; any
other body (over the router's ``quarantine_body_bytes``, or whose header could not be read)
is replaced by a :class:`QuarantineRecord`: the header as far as it could be read, the
body's SHA-256 and size, the reason, the router's message and the publishing account. A
sender cannot make the quarantine hold its bulk: 16 MiB of garbage is kept as ~1 KiB.

Every quarantined message carries the reason, message, publisher and body digest in its
headers, whichever form its body takes; ``vdx-body-kept`` says which.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import date, datetime

import aio_pika
from aio_pika.abc import FieldValue
from pydantic import BaseModel, ConfigDict

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.wire.message import identity_headers
from backbone.wire.names import (
    H_BODY_BYTES,
    H_BODY_KEPT,
    H_BODY_SHA256,
    H_MESSAGE,
    H_PUBLISHER,
    H_REASON,
)

__all__ = ["RECORD_TYPE", "QuarantineRecord", "QuarantinedHeader", "quarantine_message"]

RECORD_TYPE = "vdx.quarantine-record"
"""The AMQP ``type`` of a message whose body is a record, not the envelope."""
MAX_MESSAGE_CHARS = 1000  # of the router's message, in the record and the header


class QuarantinedHeader(BaseModel):
    """The envelope header without its bulk (key wraps, the certificate itself): who, what,
    to whom, and the SHA-256 fingerprint (of the DER) of the certificate it came with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    envelope_id: str
    kind: str
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    business_type: int | None
    status_code: str | None
    created: datetime
    payload_size: int
    payload_digest: str
    sender_certificate_sha256: str
    due_date: date | None

    @classmethod
    def of(cls, header: EnvelopeHeader) -> QuarantinedHeader:
        certificate = base64.b64decode(header.sender_certificate)  # DER, as fingerprinted
        return cls(
            envelope_id=header.envelope_id,
            kind=str(header.kind),
            sender=header.sender,
            recipients=tuple(header.recipients),
            document_id=header.document_id,
            business_type=header.business_type,
            status_code=header.status_code,
            created=header.created,
            payload_size=header.payload_size,
            payload_digest=header.payload_digest,
            sender_certificate_sha256=hashlib.sha256(certificate).hexdigest(),
            due_date=header.due_date,
        )


class QuarantineRecord(BaseModel):
    """Why an envelope was refused and what it was, without its body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Reason
    message: str
    publisher: str | None  # the broker account that published it (the broker's word)
    body_sha256: str
    body_bytes: int
    header: QuarantinedHeader | None  # None: the router could not (or would not) read it
    header_authenticated: bool  # the sender's signature was verified: not merely claimed


def quarantine_message(
    record: QuarantineRecord, body: bytes | None, header: EnvelopeHeader | None
) -> aio_pika.Message:
    """The quarantine's message: ``body`` itself when given (kept), else the record as JSON.
    ``header`` adds the envelope's identity headers."""
    headers: dict[str, FieldValue] = {
        H_REASON: record.reason.value,
        H_MESSAGE: record.message[:MAX_MESSAGE_CHARS],
        H_PUBLISHER: record.publisher or "",
        H_BODY_SHA256: record.body_sha256,
        H_BODY_BYTES: record.body_bytes,
        H_BODY_KEPT: body is not None,
    }
    if header is not None:
        headers |= identity_headers(header)
    if body is not None:
        return aio_pika.Message(
            body,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(uuid.uuid4()),
        )
    return aio_pika.Message(
        record.model_dump_json().encode(),
        headers=headers,
        content_type="application/json",
        type=RECORD_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(uuid.uuid4()),
    )
