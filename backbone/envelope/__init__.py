"""The secure envelope: what travels on the broker. Signed header, encrypted edXML payload.

Wire format and algorithms: ``schemas/envelope/README.md``.
"""

from backbone.envelope.model import MAX_STATUS_NOTE, EnvelopeHeader, KeyWrap, Kind
from backbone.envelope.seal import seal
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
from backbone.envelope.wire import DEFAULT_MAX_ENVELOPE_SIZE, Frame, read_frame

__all__ = [
    "DEFAULT_MAX_ENVELOPE_SIZE",
    "MAX_STATUS_NOTE",
    "EnvelopeHeader",
    "Frame",
    "KeyWrap",
    "Kind",
    "OpenedEnvelope",
    "VerifiedEnvelope",
    "decrypt",
    "decrypt_payload",
    "open_envelope",
    "read_frame",
    "seal",
    "unwrap_content_key",
    "verify",
    "verify_frame",
]
