"""Delivery and processing-status events: what senders and operators follow.

Published on the events exchange with routing key ``<type>.<party routing key>`` (the party
is the agency to tell: the sender of a document, or the original sender a status is about).
Each message's body is a JSON array of one or more events, all of that type and for that
party (:func:`decode_events` reads it): a busy router groups them. Events carry no document
content, only identifiers and codes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason

__all__ = ["Event", "EventType", "decode_events", "encode_events", "status_events"]


class EventType(StrEnum):
    ROUTED = "routed"  # every recipient's inbox has it (publisher confirms)
    REJECTED = "rejected"  # refused with a reason; in quarantine, whole or as a record
    DUPLICATE = "duplicate"  # a resend, answered with the original outcome
    UNROUTABLE = "unroutable"  # known recipient, nothing bound: parked
    DEAD_LETTERED = "dead_lettered"  # kept failing the router: in the dead-letter queue
    STATUS = "status"  # a recipient's processing status (01–16) about a document
    OVERDUE = "overdue"  # past its due date, not completed by a recipient (tracking)
    # Routing through a change (docs/directory.md): both alongside ``routed``.
    FORWARDED = "forwarded"  # a closed or former code's document went to ``recipients``
    WARNED = "warned"  # accepted, but the sender's own code has closed (reason sender_closed)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: EventType
    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    party: str = Field(description="organ code of the agency this event is for")
    envelope_id: str | None = None
    document_id: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    kind: str | None = None
    business_type: int | None = None
    status_code: str | None = None
    reason: Reason | None = None
    message: str | None = None
    original_outcome: str | None = Field(
        default=None, description="for duplicates: the outcome of the first submission"
    )
    directory_version: str | None = Field(
        default=None,
        description="the directory version the router decided against (<revision>:<sha256>)",
    )

    @classmethod
    def about(cls, type: EventType, header: EnvelopeHeader | None, **fields: object) -> Event:
        """An event about ``header``, for its sender unless ``party`` says otherwise. Without
        a header (a body too broken to read) ``party`` must be given."""
        values: dict[str, object] = {"type": type}
        if header is not None:
            values |= {
                "party": header.sender,
                "envelope_id": header.envelope_id,
                "document_id": header.document_id,
                "sender": header.sender,
                "recipients": tuple(header.recipients),
                "kind": str(header.kind),
                "business_type": header.business_type,
                "status_code": header.status_code,
            }
        values.update(fields)
        return cls.model_validate(values)


def status_events(header: EnvelopeHeader) -> list[Event]:
    """The ``status`` events of a routed status: one per party it is addressed to, each
    listing that party alone. A take-back (13) to 1,000 recipients is 1,000 events of one
    recipient each, not 1,000 events each listing all 1,000 (issue 14, finding 9), and no
    recipient learns from its event who else received the document."""
    return [
        Event.about(EventType.STATUS, header, party=party, recipients=(party,))
        for party in header.recipients
    ]


_EVENTS = TypeAdapter(list[Event])


def encode_events(events: list[Event]) -> bytes:
    """One events message body: a JSON array of ``events``."""
    return _EVENTS.dump_json(events)


def decode_events(body: bytes) -> list[Event]:
    """The events of one message (a JSON array); raises pydantic's ValidationError."""
    return _EVENTS.validate_json(body)
