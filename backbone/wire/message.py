"""The AMQP message an envelope travels in, and reading its headers back.

Adapters publish envelopes to the submit exchange and the router publishes them on to the
tier exchanges in the same form: the sealed body, persistent, with the envelope's identity
in headers of our own (the router and operators read them without opening the body).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import aio_pika
import aiormq
from aio_pika.abc import FieldValue

from backbone.envelope import EnvelopeHeader
from backbone.wire.names import (
    H_CC,
    H_CHUNK_INDEX,
    H_DOCUMENT,
    H_ENVELOPE,
    H_FORM,
    H_REPUBLISHED,
    H_SENDER,
)

__all__ = ["envelope_message", "envelope_properties", "header_text", "identity_headers"]


def identity_headers(header: EnvelopeHeader) -> dict[str, FieldValue]:
    """The envelope's id, its document's id and its sender, as message headers."""
    return {
        H_ENVELOPE: header.envelope_id,
        H_DOCUMENT: header.document_id,
        H_SENDER: header.sender,
    }


def envelope_message(
    body: bytes,
    header: EnvelopeHeader,
    *,
    message_id: str,
    user_id: str | None = None,
    cc: Sequence[str] = (),
    republished: bool = False,
    form: str | None = None,
    chunk_index: int | None = None,
) -> aio_pika.Message:
    """The persistent message carrying the sealed ``body``. ``message_id`` must be unique
    per publish attempt (returns are matched by it); ``user_id`` is the publishing broker
    account (the broker refuses any other); ``cc`` the further routing keys of one publish;
    ``republished`` marks a publish repeated after a crash (recipients drop duplicates);
    ``form`` and ``chunk_index`` mark a chunked document's messages (``H_FORM``)."""
    return aio_pika.Message(
        body,
        headers=_envelope_headers(header, cc, republished, form, chunk_index),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
        message_id=message_id,
        timestamp=datetime.now(UTC),
        type=str(header.kind),
    )


def envelope_properties(
    header: EnvelopeHeader,
    *,
    message_id: str,
    user_id: str | None = None,
    cc: Sequence[str] = (),
    republished: bool = False,
    form: str | None = None,
    chunk_index: int | None = None,
) -> aiormq.spec.Basic.Properties:
    """The properties :func:`envelope_message` gives its message, as aio-pika puts them on
    the wire, for a publish through aiormq directly (:mod:`backbone.broker.direct_publish`):
    the router's and the adapters' hot path, where building an aio-pika message per publish
    cost more than its frames."""
    return aiormq.spec.Basic.Properties(
        headers=_envelope_headers(header, cc, republished, form, chunk_index),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        priority=0,
        message_id=message_id,
        timestamp=datetime.now(UTC),
        message_type=str(header.kind),
        user_id=user_id,
    )


def _envelope_headers(
    header: EnvelopeHeader,
    cc: Sequence[str],
    republished: bool,
    form: str | None,
    chunk_index: int | None,
) -> dict[str, FieldValue]:
    headers = identity_headers(header)
    if form is not None:
        headers[H_FORM] = form
    if chunk_index is not None:
        headers[H_CHUNK_INDEX] = chunk_index
    if cc:
        headers[H_CC] = list(cc)
    if republished:
        headers[H_REPUBLISHED] = True
    return headers


class _HasHeaders(Protocol):
    """A message read or made: aio-pika's, or the router's own deliveries."""

    @property
    def headers(self) -> Mapping[str, object] | None: ...


def header_text(message: _HasHeaders, name: str) -> str | None:
    """Header ``name`` of ``message`` when it is text; ``None`` when absent or not text."""
    value = (message.headers or {}).get(name)
    return value if isinstance(value, str) else None
