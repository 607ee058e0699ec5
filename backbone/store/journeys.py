"""Where each document stands with each recipient, kept as routing records it.

Tracking lists journeys filtered by state, sender, recipient and time across the whole
country's history; working the state out from ``deliveries`` per request means a scan. So
every routed envelope also updates the ``journeys`` row of its document and recipient, in
the same transaction.

An update only ever sets flags, raises a maximum or takes a later value, so updates commute:
replicas routing statuses of one document at once, redeliveries and replays all end in the
same row, whatever their order. The row's ``state`` is worked out from those facts.

Which envelope touches which journey (``S`` sent document ``D`` to ``R``):
- a document S→R (new, revoked, updated, replaced), or status 13 (take-back asked) S→R:
  the journey (D, S, R);
- any other status R→S (01 … 06, 02, 15, 16): the journey (D, S, R) it answers.

``S`` is always the organ ``D`` names: the router routes a document or 13 only from it and
any other status only to it (``backbone.envelope.check_binding``), so a journey's key is
(DocumentId, original sender, recipient) and tracking reads the sender from the DocumentId.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, literal, or_
from sqlalchemy.dialects import postgresql, sqlite

from backbone.envelope import EnvelopeHeader
from backbone.store.abc import NOT_RECORDED, Routing
from backbone.store.schema import journeys

__all__ = [
    "PROGRESS_STATES",
    "JourneyFacts",
    "fact_of",
    "facts_of",
    "merge",
    "state_of",
    "upsert_statement",
]

# Statuses that move a journey forward, in order: the furthest one is the largest code.
PROGRESS_STATES = {
    "01": "delivered",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
}
_NEW, _REVOKED = 0, 1
_TAKE_BACK_ASKED, _AGREED, _REJECTED = "13", "15", "02"


@dataclass(frozen=True, slots=True)
class JourneyFacts:
    """What one or more delivery rows tell about the journey (document_id, sender,
    recipient). ``None`` and ``False`` mean "nothing said"."""

    document_id: str
    sender: str
    recipient: str
    last_at: datetime
    routed_at: datetime | None = None  # the new document (BussinessDocType 0) was routed
    revoked: bool = False
    asked: bool = False  # status 13 sent
    agreed: bool = False  # status 15 back
    rejected: bool = False  # status 02 back
    progress: str | None = None  # the furthest of 01, 03 … 06 back
    due_date: date | None = None  # from the latest document that carried one …
    due_at: datetime | None = None  # … routed then
    forwarded_to: str | None = None  # the successor the new document went to (closed code)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.document_id, self.sender, self.recipient)

    @property
    def state(self) -> str:
        return state_of(self.revoked, self.asked, self.agreed, self.rejected, self.progress)

    def row(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "sender": self.sender,
            "recipient": self.recipient,
            "routed_at": self.routed_at,
            "last_at": self.last_at,
            "revoked": self.revoked,
            "asked": self.asked,
            "agreed": self.agreed,
            "rejected": self.rejected,
            "progress": self.progress,
            "state": self.state,
            "due_date": self.due_date,
            "due_at": self.due_at,
            "forwarded_to": self.forwarded_to,
        }


def state_of(revoked: bool, asked: bool, agreed: bool, rejected: bool, progress: str | None) -> str:
    """A revocation ends a journey whatever came before; so does an agreed take-back, then a
    rejection; otherwise the furthest progress status, or just routed."""
    if revoked:
        return "revoked"
    if asked and agreed:
        return "taken_back"
    if rejected:
        return "rejected"
    return PROGRESS_STATES[progress] if progress is not None else "routed"


def facts_of(
    header: EnvelopeHeader, at: datetime, routing: Routing = NOT_RECORDED
) -> list[JourneyFacts]:
    """The journeys a routed envelope touches, one per recipient; a successor answering
    for a closed code (``routing.stands_for``) moves that code's journey."""
    return [
        fact_of(
            document_id=header.document_id,
            sender=routing.of_record(header.sender),
            recipient=routing.of_record(recipient),
            kind=str(header.kind),
            business_type=header.business_type,
            status_code=header.status_code,
            due_date=header.due_date,
            at=at,
            forwarded_to=routing.forwarded_to(recipient),
        )
        for recipient in header.recipients
    ]


def fact_of(
    *,
    document_id: str,
    sender: str,
    recipient: str,
    kind: str,
    business_type: int | None,
    status_code: str | None,
    due_date: date | None,
    at: datetime,
    forwarded_to: str | None = None,
) -> JourneyFacts:
    """What one delivery row (an envelope routed ``at`` to one recipient) tells."""
    if kind == "document":
        new = business_type == _NEW
        return JourneyFacts(
            document_id,
            sender,
            recipient,
            last_at=at,
            routed_at=at if new else None,
            forwarded_to=forwarded_to if new else None,
            revoked=business_type == _REVOKED,
            due_date=due_date,
            due_at=at if due_date is not None else None,
        )
    if status_code == _TAKE_BACK_ASKED:
        return JourneyFacts(document_id, sender, recipient, last_at=at, asked=True)
    return JourneyFacts(  # an answer from the recipient: the journey runs the other way
        document_id,
        recipient,
        sender,
        last_at=at,
        agreed=status_code == _AGREED,
        rejected=status_code == _REJECTED,
        progress=status_code if status_code in PROGRESS_STATES else None,
    )


def merge(facts: Iterable[JourneyFacts]) -> list[JourneyFacts]:
    """One fact per journey, in key order: one statement may touch a row once only, and
    replicas taking row locks in one order cannot deadlock on them."""
    merged: dict[tuple[str, str, str], JourneyFacts] = {}
    for fact in facts:
        known = merged.get(fact.key)
        merged[fact.key] = fact if known is None else _combined(known, fact)
    return [merged[key] for key in sorted(merged)]


def _combined(a: JourneyFacts, b: JourneyFacts) -> JourneyFacts:
    later_due = b.due_at is not None and (a.due_at is None or b.due_at > a.due_at)
    # The first routing of the new document says where it went (as ``routed_at``).
    first = b.routed_at is not None and (a.routed_at is None or b.routed_at < a.routed_at)
    return replace(
        a,
        last_at=max(a.last_at, b.last_at),
        routed_at=min((t for t in (a.routed_at, b.routed_at) if t is not None), default=None),
        revoked=a.revoked or b.revoked,
        asked=a.asked or b.asked,
        agreed=a.agreed or b.agreed,
        rejected=a.rejected or b.rejected,
        progress=max((p for p in (a.progress, b.progress) if p is not None), default=None),
        due_date=b.due_date if later_due else a.due_date,
        due_at=b.due_at if later_due else a.due_at,
        forwarded_to=b.forwarded_to if first else a.forwarded_to,
    )


def upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE combining a :meth:`JourneyFacts.row` with the stored
    row the way :func:`merge` combines two facts (SQLite and PostgreSQL alike)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(journeys)
    new, old = insert.excluded, journeys.c

    def later(value: Any, than: Any) -> ColumnElement[Any]:
        wins = and_(value.is_not(None), or_(than.is_(None), value > than))
        return case((wins, value), else_=than)

    def earlier(value: Any, than: Any) -> ColumnElement[Any]:
        wins = and_(value.is_not(None), or_(than.is_(None), value < than))
        return case((wins, value), else_=than)

    revoked, asked = or_(old.revoked, new.revoked), or_(old.asked, new.asked)
    agreed, rejected = or_(old.agreed, new.agreed), or_(old.rejected, new.rejected)
    progress = later(new.progress, old.progress)
    later_due = and_(new.due_at.is_not(None), or_(old.due_at.is_(None), new.due_at > old.due_at))
    first = and_(
        new.routed_at.is_not(None), or_(old.routed_at.is_(None), new.routed_at < old.routed_at)
    )
    progress_state = case(
        *((progress == code, literal(name, String)) for code, name in PROGRESS_STATES.items()),
        else_=literal("routed", String),
    )
    state = case(
        (revoked, literal("revoked", String)),
        (and_(asked, agreed), literal("taken_back", String)),
        (rejected, literal("rejected", String)),
        else_=progress_state,
    )
    return insert.on_conflict_do_update(
        index_elements=list(journeys.primary_key),
        set_={
            "last_at": later(new.last_at, old.last_at),
            "routed_at": earlier(new.routed_at, old.routed_at),
            "revoked": revoked,
            "asked": asked,
            "agreed": agreed,
            "rejected": rejected,
            "progress": progress,
            "state": state,
            "due_date": case((later_due, new.due_date), else_=old.due_date),
            "due_at": case((later_due, new.due_at), else_=old.due_at),
            "forwarded_to": case((first, new.forwarded_to), else_=old.forwarded_to),
        },
    )
