"""The secure envelope: what travels on the broker. Signed header, encrypted edXML payload.

Wire format and algorithms: ``schemas/envelope/README.md``.
"""

from backbone.envelope.binding import check_agreement, check_binding, status_note_of
from backbone.envelope.bounds import MAX_HEADER_BYTES, max_header_bytes
from backbone.envelope.model import MAX_STATUS_NOTE, EnvelopeHeader, KeyWrap, Kind
from backbone.envelope.seal import SealParties, seal
from backbone.envelope.unseal import (
    OpenedEnvelope,
    VerifiedEnvelope,
    decrypt,
    decrypt_payload,
    open_envelope,
    unwrap_content_key,
    verify,
    verify_frame,
)
from backbone.envelope.wire import DEFAULT_MAX_ENVELOPE_SIZE, Frame, header_length, read_frame

__all__ = [
    "DEFAULT_MAX_ENVELOPE_SIZE",
    "MAX_HEADER_BYTES",
    "MAX_STATUS_NOTE",
    "EnvelopeHeader",
    "Frame",
    "KeyWrap",
    "Kind",
    "OpenedEnvelope",
    "SealParties",
    "VerifiedEnvelope",
    "check_agreement",
    "check_binding",
    "decrypt",
    "decrypt_payload",
    "header_length",
    "max_header_bytes",
    "open_envelope",
    "read_frame",
    "seal",
    "status_note_of",
    "unwrap_content_key",
    "verify",
    "verify_frame",
]
