"""The JSON files the drop folder writes beside documents: receipts, errors, metadata.

They are for the agency's software and its clerks, so they say things plainly and carry
no key material; the document's own content stays in the ``.edxml`` beside them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.abc import Event, Receipt, Received
from adapters.dropfolder.remedies import what_to_do
from backbone.edxml import EdxmlDocument, EdxmlStatus, Issue
from backbone.errors import BackboneError

__all__ = [
    "certificate_info",
    "document_metadata",
    "error_from_exception",
    "error_record",
    "receipt_record",
    "router_event_record",
    "status_file_stem",
    "status_metadata",
]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def receipt_record(receipt: Receipt, *, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "envelope_id": receipt.envelope_id,
        "document_id": receipt.document_id,
        "sender": receipt.sender,
        "recipients": list(receipt.recipients),
        "sent_at": _iso(receipt.sent_at),
    }


def router_event_record(event: Event) -> dict[str, Any]:
    """One entry of a receipt's ``router_events``: what the router (or tracking) said."""
    entry: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type.value,
        "at": _iso(event.at),
    }
    if event.reason is not None:
        entry["reason"] = event.reason.value
        entry["what_to_do"] = what_to_do(event.reason.value)
    if event.message:
        entry["message"] = event.message
    if event.original_outcome:
        entry["original_outcome"] = event.original_outcome
    return entry


def error_record(
    *,
    file: str,
    reason: str,
    message: str,
    issues: list[Issue] | None = None,
) -> dict[str, Any]:
    """What ``failed/<name>.error.json`` says: the stable reason code, a sentence, what to
    do about it (docs/reasons.md), and for invalid edXML every problem with its line and
    element path."""
    return {
        "file": file,
        "reason": reason,
        "message": message,
        "what_to_do": what_to_do(reason),
        "issues": [issue.as_dict() for issue in issues or []],
        "failed_at": _iso(datetime.now(UTC)),
    }


def error_from_exception(file: str, error: BackboneError) -> dict[str, Any]:
    line = getattr(error, "line", None)
    path = getattr(error, "path", None)
    issues = [Issue(error.message, line, path)] if line is not None or path else []
    return error_record(file=file, reason=error.reason.value, message=error.message, issues=issues)


def certificate_info(pem: str) -> dict[str, Any]:
    """Subject, issuer, serial, validity and SHA-256 fingerprint of the verified signer."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return {"pem": pem}
    der = certificate.public_bytes(Encoding.DER)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
        "not_valid_after": _iso(certificate.not_valid_after_utc),
        "sha256_fingerprint": hashlib.sha256(der).hexdigest(),
        "pem": pem,
    }


def _common(received: Received) -> dict[str, Any]:
    header = received.header
    return {
        "envelope_id": header.envelope_id,
        "kind": header.kind.value,
        "sender": header.sender,
        "recipients": list(header.recipients),
        "recipient": received.recipient,
        "document_id": header.document_id,
        "sealed_at": _iso(header.created),
        "received_at": _iso(received.received_at),
        "signer": certificate_info(received.signer_certificate_pem),
        # Addressed to a closed code this agency took over (docs/directory.md).
        **({"forwarded_from": received.forwarded_from} if received.forwarded_from else {}),
    }


def document_metadata(
    received: Received, document: EdxmlDocument, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **_common(received),
        "business_type": received.header.business_type,
        "subject": document.subject,
        "attachments": attachments,
    }


def status_metadata(received: Received, status: EdxmlStatus) -> dict[str, Any]:
    return {
        **_common(received),
        "status_code": status.status_code.value,
        "description": status.description,
        "timestamp": _iso(status.timestamp),
    }


def status_file_stem(received: Received, status: EdxmlStatus) -> str:
    """``<sealed at>_<status code>_<envelope id>``: sorting names sorts statuses in the order
    they were sent (the sender's signed seal time, UTC with microseconds), whatever date the
    edXML Timestamp claims (a status dated last year still sorts after today's 01), and the
    code shows in the name."""
    sealed = received.header.created.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{sealed}_{status.status_code.value}_{received.envelope_id}"
