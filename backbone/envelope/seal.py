"""Sealing: encrypt an edXML once for all its recipients, and sign the header."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from backbone.edxml import EdxmlDocument, EdxmlStatus
from backbone.envelope import algorithms
from backbone.envelope.binding import check_agreement, check_binding
from backbone.envelope.model import EnvelopeHeader, KeyWrap, Kind, summarize
from backbone.envelope.wire import encode
from backbone.errors import CertificateBindingError, CertificateKeyUsageError, EnvelopeError
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator

__all__ = [
    "SealParties",
    "b64",
    "build_header",
    "checked_parties",
    "in_utc",
    "key_wraps",
    "seal",
    "signed",
]

_H = TypeVar("_H", bound=EnvelopeHeader)


@dataclass(frozen=True, slots=True, kw_only=True)
class SealParties:
    """Who seals for whom, and what the header says of the edXML: what both envelope forms
    take (:func:`seal`, :func:`~backbone.envelope.split.seal_file`) and put in the header.

    ``recipients`` maps each recipient organ code to the certificate to encrypt to.
    ``due_date`` (a document's DueDate) and ``status_note`` (a status's Description, at most
    ``MAX_STATUS_NOTE`` characters) are optional tracking fields the router may read.
    ``message`` is the validated model of the edXML sealed: given, a header that disagrees
    with it (:func:`~backbone.envelope.binding.check_agreement`) is never signed; callers
    that have no model (tests of the envelope) seal any bytes."""

    kind: Kind
    sender: OrganCode | str
    sender_key: rsa.RSAPrivateKey = field(repr=False)
    sender_cert: x509.Certificate = field(repr=False)
    recipients: Mapping[str, x509.Certificate] | Mapping[OrganCode, x509.Certificate] = field(
        repr=False
    )
    document_id: str
    business_type: int | None = None
    status_code: str | None = None
    due_date: date | None = None
    status_note: str | None = None
    message: EdxmlDocument | EdxmlStatus | None = field(default=None, repr=False)


def seal(
    edxml: bytes,
    parties: SealParties,
    *,
    envelope_id: str | None = None,
    created: datetime | None = None,
    validator: CertificateValidator | None = None,
) -> bytes:
    """Return the envelope's wire bytes: ``edxml`` encrypted for ``parties.recipients``,
    the header signed by ``parties.sender``.

    With a ``validator``, the sender certificate (for signing) and every recipient
    certificate (for key encipherment, bound to its organ code) are validated first;
    without one, the caller must have validated them (e.g. taken them from a checked
    directory).

    The header must be bound (:func:`~backbone.envelope.binding.check_binding`: the
    DocumentId's shape, its organ the sender's or, for a status, the addressee's), and, given
    ``parties.message``, say what the edXML says. ``edxml`` itself is opaque here.
    """
    sender_code, targets = checked_parties(parties, validator)

    envelope_id = envelope_id or str(uuid.uuid4())
    content_key = algorithms.new_content_key()
    nonce = algorithms.new_nonce()
    ciphertext = algorithms.encrypt_content(content_key, nonce, edxml, envelope_id.encode())
    header = build_header(
        EnvelopeHeader,
        parties,
        sender_code=sender_code,
        targets=targets,
        content_key=content_key,
        envelope_id=envelope_id,
        created=in_utc(created),
        payload_size=len(ciphertext),
        payload_digest=algorithms.sha256_hex(ciphertext),
        content_encryption=algorithms.CONTENT_ENCRYPTION,
        nonce=b64(nonce),
    )
    return encode(*signed(header, parties.sender_key), ciphertext)


def checked_parties(
    parties: SealParties, validator: CertificateValidator | None
) -> tuple[OrganCode, dict[OrganCode, x509.Certificate]]:
    """The sender's code and the recipients' certificates by code, once the signing key is
    the sender certificate's and (with a ``validator``) every certificate is valid for its
    use. Shared by both envelope forms (:mod:`backbone.envelope.chunked` too)."""
    sender_code = OrganCode.parse(str(parties.sender))
    targets = {OrganCode.parse(str(code)): cert for code, cert in parties.recipients.items()}
    if not _same_key(parties.sender_key, parties.sender_cert):
        raise CertificateBindingError(
            f"the signing key given for {sender_code} is not the key of its certificate"
        )
    if validator is not None:
        validator.validate(parties.sender_cert, claimed=sender_code, usage="sign")
        for code, cert in targets.items():
            validator.validate(cert, claimed=code, usage="encrypt")
    return sender_code, targets


def build_header(
    model: type[_H],
    parties: SealParties,
    *,
    sender_code: OrganCode,
    targets: Mapping[OrganCode, x509.Certificate],
    content_key: bytes,
    **fields: Any,
) -> _H:
    """A header of ``model`` (either envelope form) with what both forms share: the
    parties' fields (``sender_code`` and ``targets`` as :func:`checked_parties` gave them),
    the recipients' key wraps, the key commitment, the sender's certificate; checked for
    binding and, given ``parties.message``, for agreement with the edXML: a header that
    disagrees is never signed. ``fields``: the form's own (ids, payload, encryption)."""
    try:
        header = model(
            version=1,
            recipients=[str(code) for code in targets],
            key_commitment=algorithms.key_commitment(content_key),
            key_wraps=key_wraps(targets, content_key),
            sender_certificate=b64(parties.sender_cert.public_bytes(serialization.Encoding.DER)),
            signature_alg=algorithms.SIGNATURE,
            kind=Kind(parties.kind),
            sender=str(sender_code),
            document_id=parties.document_id,
            business_type=parties.business_type,
            status_code=parties.status_code,
            due_date=parties.due_date,
            status_note=parties.status_note,
            **fields,
        )
    except ValidationError as exc:
        raise EnvelopeError(f"cannot seal an envelope: {summarize(exc)}") from None
    check_binding(header)
    if parties.message is not None:
        check_agreement(header, parties.message)
    return header


def key_wraps(targets: Mapping[OrganCode, x509.Certificate], content_key: bytes) -> list[KeyWrap]:
    """``content_key`` wrapped for each recipient (RSAES-OAEP), in ``targets``' order."""
    return [_wrap(code, cert, content_key) for code, cert in targets.items()]


def signed(header: EnvelopeHeader, sender_key: rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    """The header's wire bytes and the sender's RSASSA-PSS signature over them."""
    # The optional tracking fields are left out when null: such a header is byte for byte
    # what readers that predate them accept.
    unset = {name for name in ("due_date", "status_note") if getattr(header, name) is None}
    header_bytes = header.model_dump_json(exclude=unset).encode()
    return header_bytes, algorithms.sign(sender_key, header_bytes)


def in_utc(created: datetime | None) -> datetime:
    """``created`` as an aware UTC instant (now when None); a naive one stays naive so the
    header's model refuses it."""
    if created is None:
        return datetime.now(UTC)
    return created.astimezone(UTC) if created.tzinfo is not None else created


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _wrap(code: OrganCode, certificate: x509.Certificate, content_key: bytes) -> KeyWrap:
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateKeyUsageError(
            f"certificate for {code} holds a {type(public_key).__name__}; envelope keys are "
            "wrapped with RSAES-OAEP and need an RSA key"
        )
    return KeyWrap(
        recipient=str(code),
        cert_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        alg=algorithms.KEY_WRAP,
        wrapped_key=b64(algorithms.wrap_key(public_key, content_key)),
    )


def _same_key(key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bool:
    public_key = certificate.public_key()
    return (
        isinstance(public_key, rsa.RSAPublicKey)
        and public_key.public_numbers() == key.public_key().public_numbers()
    )
