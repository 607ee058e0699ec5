"""Opening a received envelope: from the AMQP body to :class:`~adapters.abc.Received` items
and :class:`~adapters.abc.Refused` refusals, one per served recipient.

Pure: no broker, no event loop. The envelope is unwrapped and its header signature verified
(never trust the broker or the router), then, for each served agency it is addressed to,
decrypted, its XML-DSig verified, its edXML validated and compared with the signed header.
An envelope that is not authentic, not for us, or cannot be judged now raises; content a
served agency cannot accept comes back as a :class:`Refused` (see :mod:`adapters.receiving`
for what is done with each).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization

from adapters.abc import Received, Refused
from adapters.config import ServedIdentity
from backbone.edxml import EdxmlDocument, EdxmlStatus, validate
from backbone.envelope import (
    EnvelopeHeader,
    VerifiedEnvelope,
    check_agreement,
    check_binding,
    decrypt,
    read_frame,
    verify_frame,
)
from backbone.errors import (
    BackboneError,
    NotARecipientError,
    RevocationUnknownError,
    StoreUnavailableError,
)
from backbone.organ import OrganCode
from backbone.pki.validation import CertificateValidator
from backbone.xmldsig import verify_edxml

__all__ = ["EnvelopeOpener", "Opened", "check_matches"]


class Opened(NamedTuple):
    """What one envelope yields: items to hand out, and refusals."""

    items: list[Received]
    refusals: list[Refused]


class EnvelopeOpener:
    """Opens envelopes for the served agencies ``agencies`` (organ code → identity)."""

    def __init__(
        self,
        agencies: Mapping[str, ServedIdentity],
        validator: CertificateValidator,
        *,
        max_envelope_bytes: int,
        system: str,
    ) -> None:
        self._agencies = agencies
        self._validator = validator
        self._max_envelope_bytes = max_envelope_bytes
        self._system = system

    def open(self, body: bytes) -> Opened:
        """Verify the envelope, then decrypt and verify for each served recipient. Raises
        when the envelope is not authentic, not for us, or cannot be judged now (revocation
        status unknown); content a recipient refuses is returned as a :class:`Refused`."""
        frame = read_frame(body, max_size=self._max_envelope_bytes)
        envelope = verify_frame(frame, self._validator)  # never trust the broker or router
        header = envelope.header
        ours = [code for code in header.recipients if code in self._agencies]
        if not ours:
            raise NotARecipientError(
                f"envelope {header.envelope_id} is for {', '.join(header.recipients)}; "
                f"{self._system} serves none of them"
            )
        items: list[Received] = []
        refusals: list[Refused] = []
        for code in ours:
            opened = self._open_for(envelope, self._agencies[code], body)
            if isinstance(opened, Received):
                items.append(opened)
            else:
                refusals.append(opened)
        return Opened(items, refusals)

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
            check_matches(header, message, identity.organ_code)
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


def check_matches(
    header: EnvelopeHeader, message: EdxmlDocument | EdxmlStatus, recipient: str
) -> None:
    """The signed header must be bound to its parties (the router checks it too, but the
    recipient trusts no one on the path) and say what the signed edXML says, for the
    ``recipient`` served here."""
    check_binding(header)
    check_agreement(header, message, [recipient])
