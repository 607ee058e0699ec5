"""The broker contract: exchange, queue and header names, the events and their encoding,
and the AMQP message an envelope travels in. Router, adapters, provisioning and tracking
all speak it; none of them owns it."""

from __future__ import annotations

from backbone.wire.events import Event, EventType, decode_events, encode_events, status_events
from backbone.wire.message import (
    envelope_message,
    envelope_properties,
    header_text,
    identity_headers,
)
from backbone.wire.names import (
    FORM_CHUNK,
    FORM_CHUNKED_HEADER,
    H_ATTEMPTS,
    H_BODY_BYTES,
    H_BODY_KEPT,
    H_BODY_SHA256,
    H_CC,
    H_CHUNK_INDEX,
    H_DOCUMENT,
    H_ENVELOPE,
    H_FORM,
    H_HELD_FOR,
    H_MESSAGE,
    H_PUBLISHER,
    H_REASON,
    H_REPUBLISHED,
    H_SENDER,
    H_WAITING_SINCE,
    Names,
)
from backbone.wire.quarantine import QuarantinedHeader, QuarantineRecord, quarantine_message

__all__ = [
    "FORM_CHUNK",
    "FORM_CHUNKED_HEADER",
    "H_ATTEMPTS",
    "H_BODY_BYTES",
    "H_BODY_KEPT",
    "H_BODY_SHA256",
    "H_CC",
    "H_CHUNK_INDEX",
    "H_DOCUMENT",
    "H_ENVELOPE",
    "H_FORM",
    "H_HELD_FOR",
    "H_MESSAGE",
    "H_PUBLISHER",
    "H_REASON",
    "H_REPUBLISHED",
    "H_SENDER",
    "H_WAITING_SINCE",
    "Event",
    "EventType",
    "Names",
    "QuarantineRecord",
    "QuarantinedHeader",
    "decode_events",
    "encode_events",
    "envelope_message",
    "envelope_properties",
    "header_text",
    "identity_headers",
    "quarantine_message",
    "status_events",
]
