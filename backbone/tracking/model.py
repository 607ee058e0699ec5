"""What tracking answers: typed, JSON-ready value objects (also the API's response models).

A *journey* is one document on its way to one recipient; its ``state`` is where it stands:
``routed`` (in the recipient's inbox), a status code's name (``delivered`` 01, ``rejected``
02, ``accepted`` 03, ``assigned`` 04, ``processing`` 05, ``completed`` 06), ``revoked`` (the
sender revoked it) or ``taken_back`` (a take-back request, 13, agreed, 15).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DocumentTrack",
    "Journey",
    "JourneyPage",
    "OverdueAgency",
    "OverdueOverview",
    "Principal",
    "RecipientTrack",
    "RefusedEnvelope",
    "State",
    "Step",
    "StepKind",
]


class State(StrEnum):
    """Where a document stands with one recipient."""

    ROUTED = "routed"
    DELIVERED = "delivered"  # 01
    REJECTED = "rejected"  # 02
    ACCEPTED = "accepted"  # 03
    ASSIGNED = "assigned"  # 04
    PROCESSING = "processing"  # 05
    COMPLETED = "completed"  # 06
    REVOKED = "revoked"
    TAKEN_BACK = "taken_back"

    @property
    def finished(self) -> bool:
        """Nothing more is expected of the recipient: no longer overdue."""
        return self in _FINISHED


_FINISHED = frozenset({State.REJECTED, State.COMPLETED, State.REVOKED, State.TAKEN_BACK})


class StepKind(StrEnum):
    """One event of a journey."""

    SUBMITTED = "submitted"  # the router took the sender's envelope
    ROUTED = "routed"  # in the recipient's inbox (publisher confirms)
    REVOKED = "revoked"  # BussinessDocType 1
    UPDATED = "updated"  # 2
    REPLACED = "replaced"  # 3
    DELIVERED = "delivered"  # status 01 … 06
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    ASSIGNED = "assigned"
    PROCESSING = "processing"
    COMPLETED = "completed"
    TAKE_BACK_REQUESTED = "take_back_requested"  # 13, from the sender
    AGREED = "agreed"  # 15: a take-back or update request agreed
    REFUSED = "refused"  # 16: refused
    OVERDUE = "overdue"  # the router found it past its due date
    STATUS = "status"  # any other status code


class Principal(BaseModel):
    """Who is asking: an operator sees everything; agency staff see what their agencies
    sent and received (one agency, or the several a hub serves)."""

    model_config = ConfigDict(frozen=True)

    operator: bool = False
    agencies: tuple[str, ...] = Field(
        default=(), description="organ codes the holder acts for (none for an operator)"
    )

    def acts_for(self, code: str) -> bool:
        return self.operator or code in self.agencies


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    kind: StepKind
    by: str | None = Field(default=None, description="organ code of the agency that acted")
    status_code: str | None = None
    note: str | None = Field(default=None, description="the status's Description, if sent")
    forwarded_to: str | None = Field(
        default=None,
        description="the successor the envelope went to: the code addressed had closed",
    )
    directory_version: str | None = Field(
        default=None, description="the directory version the router routed it by"
    )


class Journey(BaseModel):
    """One document to one recipient, where it stands."""

    model_config = ConfigDict(frozen=True)

    document_id: str
    sender: str
    recipient: str
    tier: str = Field(description="the recipient's tier")
    state: State
    routed_at: datetime
    last_at: datetime = Field(description="the journey's latest step")
    due_date: date | None = None
    overdue: bool = Field(description="past its due date and not finished by the recipient")
    forwarded_to: str | None = Field(
        default=None,
        description="the agency the document was forwarded to: the recipient as addressed "
        "had closed, and this successor took its place",
    )


class RecipientTrack(BaseModel):
    model_config = ConfigDict(frozen=True)

    journey: Journey
    steps: list[Step]


class RefusedEnvelope(BaseModel):
    """An envelope about the document that the router refused (never routed), as its
    sender sees it: the reason code and the router's message."""

    model_config = ConfigDict(frozen=True)

    envelope_id: str
    by: str = Field(description="the agency that sent it")
    kind: str = Field(description="document or status")
    status_code: str | None = None
    reason: str = Field(description="the reason code (docs/reasons.md)")
    message: str
    at: datetime


class DocumentTrack(BaseModel):
    """A document's journeys to each recipient (as many as the asker may see), as timelines,
    and the envelopes about it the router refused that the asker sent."""

    model_config = ConfigDict(frozen=True)

    document_id: str
    sender: str
    submitted_at: datetime | None = None
    recipients: list[RecipientTrack]
    refused: list[RefusedEnvelope] = Field(default_factory=list)


class JourneyPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[Journey]
    page: int
    page_size: int
    total: int


class OverdueAgency(BaseModel):
    model_config = ConfigDict(frozen=True)

    agency: str = Field(description="organ code of the recipient that is late")
    tier: str
    overdue: int


class OverdueOverview(BaseModel):
    """Journeys past their due date and not finished, per tier and per late agency."""

    model_config = ConfigDict(frozen=True)

    as_of: date = Field(description="the day (in the router's time zone) they are overdue on")
    total: int
    by_tier: dict[str, int]
    agencies: list[OverdueAgency]
    documents: list[Journey] = Field(description="the longest overdue first, at most 100")
