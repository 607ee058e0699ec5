"""Checking and opening envelopes: :func:`verify` for the router, :func:`open_envelope`
for recipients.

A caller that has already split the body with :func:`~backbone.envelope.wire.read_frame`
(the router, which checks the directory before any cryptography) finishes with
:func:`verify_frame` instead of parsing twice.

Order of the checks (each trusts only what the previous ones established):

1. framing and header schema (:func:`~backbone.envelope.wire.read_frame`) — bounded parsing;
2. the sender certificate: chains to a trust anchor, valid now, not revoked, allows
   digitalSignature, bound to ``header.sender`` — a cache hit costs a few microseconds;
3. the RSASSA-PSS signature over the exact header bytes → :class:`SignatureInvalidError`;
4. payload size, then SHA-256 of the ciphertext against the signed header →
   :class:`PayloadTamperedError`.

The payload is checked last on purpose: only then does each error name what was altered
(the header and its key wraps fail the signature; the payload fails the size or digest),
and the one step whose cost grows with the payload runs only for authentic headers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from backbone.envelope import algorithms
from backbone.envelope.model import EnvelopeHeader
from backbone.envelope.wire import DEFAULT_MAX_ENVELOPE_SIZE, Frame, read_frame
from backbone.errors import (
    CertificateKeyUsageError,
    DecryptionError,
    NotARecipientError,
    PayloadTamperedError,
    SignatureInvalidError,
)
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator, ValidatedCertificate

__all__ = [
    "Headed",
    "OpenedEnvelope",
    "VerifiedEnvelope",
    "decrypt",
    "decrypt_payload",
    "open_envelope",
    "unwrap_content_key",
    "verify",
    "verify_frame",
    "verify_signature",
]


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """An envelope whose header the sender signed and whose payload is the one signed for."""

    header: EnvelopeHeader
    sender: ValidatedCertificate
    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    header: EnvelopeHeader
    sender: ValidatedCertificate
    edxml: bytes = field(repr=False)  # plaintext: never in reprs or logs


def verify(
    body: bytes,
    validator: CertificateValidator,
    *,
    max_size: int = DEFAULT_MAX_ENVELOPE_SIZE,
    at: datetime | None = None,
) -> VerifiedEnvelope:
    """The router's check: everything but decryption. Raises an :class:`EnvelopeError` or
    :class:`CertificateError` subclass naming what failed."""
    return verify_frame(read_frame(body, max_size=max_size), validator, at=at)


def verify_frame(
    frame: Frame, validator: CertificateValidator, *, at: datetime | None = None
) -> VerifiedEnvelope:
    """Steps 2–4 of :func:`verify` on a body already split by
    :func:`~backbone.envelope.wire.read_frame`."""
    header = frame.header
    sender = verify_signature(header, frame.header_bytes, frame.signature, validator, at=at)
    if len(frame.ciphertext) != header.payload_size:
        raise PayloadTamperedError(
            f"payload is {len(frame.ciphertext)} bytes; the signed header says "
            f"{header.payload_size}"
        )
    if algorithms.sha256_hex(frame.ciphertext) != header.payload_digest:
        raise PayloadTamperedError(
            "payload SHA-256 does not match the signed header: the ciphertext was altered"
        )
    return VerifiedEnvelope(header, sender, frame.ciphertext)


def verify_signature(
    header: EnvelopeHeader,
    header_bytes: bytes,
    signature: bytes,
    validator: CertificateValidator,
    *,
    at: datetime | None = None,
) -> ValidatedCertificate:
    """Steps 2 and 3 (either envelope form): the sender certificate is valid for signing and
    bound to ``header.sender``, and ``signature`` is its RSASSA-PSS signature over the exact
    ``header_bytes``."""
    sender = validator.validate(
        base64.b64decode(header.sender_certificate),
        claimed=OrganCode.parse(header.sender),
        usage="sign",
        at=at,
    )
    public_key = sender.public_key
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateKeyUsageError(
            f"certificate for {header.sender} holds a {type(public_key).__name__}; envelopes "
            "are signed with RSASSA-PSS and need an RSA key"
        )
    if not algorithms.signature_verifies(public_key, signature, header_bytes):
        raise SignatureInvalidError(
            "envelope signature does not verify: the header, a key wrap or the signature was "
            "altered, or it was signed with another key"
        )
    return sender


class Headed(Protocol):
    """An authentic envelope of either form: its header is all key unwrapping reads."""

    @property
    def header(self) -> EnvelopeHeader: ...


def decrypt(
    envelope: VerifiedEnvelope, *, recipient: OrganCode | str, recipient_key: rsa.RSAPrivateKey
) -> OpenedEnvelope:
    """Unwrap the content key for ``recipient`` and decrypt the payload."""
    content_key = unwrap_content_key(envelope, recipient=recipient, recipient_key=recipient_key)
    return OpenedEnvelope(
        header=envelope.header, sender=envelope.sender, edxml=decrypt_payload(envelope, content_key)
    )


def unwrap_content_key(
    envelope: Headed, *, recipient: OrganCode | str, recipient_key: rsa.RSAPrivateKey
) -> bytes:
    """``recipient``'s content key, checked against the header's key commitment: every
    recipient for whom this succeeds holds the same key, so reads the same plaintext (a
    hub serving several recipients decrypts once, :func:`decrypt_payload`)."""
    header = envelope.header
    code = str(OrganCode.parse(str(recipient)))
    wrap = next((wrap for wrap in header.key_wraps if wrap.recipient == code), None)
    if wrap is None:
        raise NotARecipientError(
            f"{code} is not a recipient of envelope {header.envelope_id} "
            f"(recipients: {', '.join(header.recipients)})"
        )
    try:
        content_key = algorithms.unwrap_key(recipient_key, base64.b64decode(wrap.wrapped_key))
    except DecryptionError as exc:
        raise DecryptionError(
            f"{exc.message}; the wrap for {code} was made for certificate SHA-256 "
            f"{wrap.cert_sha256}"
        ) from None
    if algorithms.key_commitment(content_key) != header.key_commitment:
        raise DecryptionError(
            f"the content key unwrapped by {code} is not the one the header commits to: the "
            "sender gave recipients different keys"
        )
    return content_key


def decrypt_payload(envelope: VerifiedEnvelope, content_key: bytes) -> bytes:
    """The plaintext, with a key from :func:`unwrap_content_key`."""
    return algorithms.decrypt_content(
        content_key,
        base64.b64decode(envelope.header.nonce),
        envelope.ciphertext,
        envelope.header.envelope_id.encode(),
    )


def open_envelope(
    body: bytes,
    *,
    recipient: OrganCode | str,
    recipient_key: rsa.RSAPrivateKey,
    validator: CertificateValidator,
    max_size: int = DEFAULT_MAX_ENVELOPE_SIZE,
    at: datetime | None = None,
) -> OpenedEnvelope:
    """The recipient's path: :func:`verify`, then :func:`decrypt`."""
    return decrypt(
        verify(body, validator, max_size=max_size, at=at),
        recipient=recipient,
        recipient_key=recipient_key,
    )
