"""The SQL statements the store runs, built once, and the parameter rows they take."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    String,
    Table,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.store.abc import Outcome, Routing, SubmissionKey
from backbone.store.schema import UtcDateTime, claims, deliveries, refusals

__all__ = [
    "FINISH",
    "HISTORY",
    "OUTCOME_OF",
    "PING",
    "READ_CLAIM",
    "REFUSALS",
    "TAKE_OVER",
    "claim_key",
    "claim_row",
    "delivery_fields",
    "delivery_rows",
    "finished",
    "insert_if_absent",
    "routed_in_one_statement",
]

_IDENTITY = and_(
    claims.c.sender == bindparam("k_sender"),
    claims.c.document_id == bindparam("k_document"),
    claims.c.variant == bindparam("k_variant"),
)
READ_CLAIM = select(claims.c.payload_digest, claims.c.envelope_id, claims.c.outcome).where(
    _IDENTITY
)
# Compare-and-set: hand an unfinished claim to a new envelope only if nobody finished or
# took it over since it was read.
TAKE_OVER = (
    update(claims)
    .where(_IDENTITY, claims.c.envelope_id == bindparam("k_holder"), claims.c.outcome.is_(None))
    .values(
        envelope_id=bindparam("new_envelope"),
        claimed_at=bindparam("new_claimed_at", type_=UtcDateTime),
    )
)
FINISH = (
    update(claims)
    .where(claims.c.envelope_id == bindparam("k_envelope"))
    .values(outcome=bindparam("new_outcome"), reason=bindparam("new_reason"))
)
OUTCOME_OF = select(claims.c.outcome).where(claims.c.envelope_id == bindparam("k_envelope"))


def _reached(code: str) -> ColumnElement[bool]:
    """The delivery went to ``code``: as addressed, or forwarded to it (``Delivery.reached``)."""
    return or_(
        deliveries.c.recipient == bindparam(code), deliveries.c.forwarded_to == bindparam(code)
    )


HISTORY = (
    select(deliveries)
    .where(
        deliveries.c.document_id == bindparam("k_document"),
        or_(
            and_(deliveries.c.sender == bindparam("k_a"), _reached("k_b")),
            and_(deliveries.c.sender == bindparam("k_b"), _reached("k_a")),
        ),
    )
    .order_by(deliveries.c.at, deliveries.c.envelope_id, deliveries.c.recipient)
)
REFUSALS = (
    select(refusals)
    .where(
        refusals.c.document_id == bindparam("k_document"),
        refusals.c.sender == bindparam("k_sender"),
    )
    .order_by(refusals.c.at, refusals.c.envelope_id)
)
PING = select(literal(1))
_DELIVERY_FIELDS = [(column.name, column.type) for column in deliveries.columns]


def insert_if_absent(
    insert: Callable[[Table], postgresql.Insert | sqlite.Insert], table: Table
) -> postgresql.Insert | sqlite.Insert:
    return insert(table).on_conflict_do_nothing(index_elements=list(table.primary_key))


def routed_in_one_statement() -> Executable:
    """PostgreSQL's ``record_routed``: the claim's update rides in the WITH clause of the
    deliveries insert, which makes one row per element of the recipients array."""
    routed = (
        update(claims)
        .where(claims.c.envelope_id == bindparam("k_envelope"))
        .values(outcome=Outcome.ROUTED.value, reason=None)
        .cte("routed")
    )
    # The two arrays are as long as each other: PostgreSQL unnests them in step.
    per_recipient_arrays = {"recipient": "d_recipients", "forwarded_to": "d_forwarded"}
    per_recipient = select(
        *(
            bindparam("k_envelope", type_=String)
            if name == "envelope_id"
            else func.unnest(bindparam(per_recipient_arrays[name], type_=postgresql.ARRAY(String)))
            if name in per_recipient_arrays
            else bindparam(f"d_{name}", type_=kind)
            for name, kind in _DELIVERY_FIELDS
        )
    )
    return (
        insert_if_absent(postgresql.insert, deliveries)
        .from_select([name for name, _ in _DELIVERY_FIELDS], per_recipient)
        .add_cte(routed)
    )


def delivery_rows(header: EnvelopeHeader, at: datetime, routing: Routing) -> list[dict[str, Any]]:
    """The delivery rows of ``header`` routed ``at``, one per recipient."""
    fields = delivery_fields(header, at, routing)
    return [
        {**fields, "recipient": recipient, "forwarded_to": routing.forwarded_to(recipient)}
        for recipient in header.recipients
    ]


def delivery_fields(header: EnvelopeHeader, at: datetime, routing: Routing) -> dict[str, Any]:
    """A delivery row of ``header`` routed ``at``, but for its recipient and forward."""
    return {
        "envelope_id": header.envelope_id,
        "document_id": header.document_id,
        "sender": header.sender,
        "kind": str(header.kind),
        "business_type": header.business_type,
        "status_code": header.status_code,
        "at": at,
        "due_date": header.due_date,
        "status_note": header.status_note,
        "directory_version": routing.directory_version,
    }


def claim_row(
    identity: SubmissionKey, envelope_id: str, now: datetime, outcome: Outcome | None = None
) -> dict[str, Any]:
    """A claim's row; ``outcome`` set when the claim is finished as it is made."""
    return {
        "sender": identity.sender,
        "document_id": identity.document_id,
        "variant": identity.variant,
        "payload_digest": identity.payload_digest,
        "envelope_id": envelope_id,
        "outcome": None if outcome is None else outcome.value,
        "claimed_at": now,
    }


def claim_key(identity: SubmissionKey, envelope_id: str) -> tuple[str, str, str, str]:
    return (identity.sender, identity.document_id, identity.variant, envelope_id)


def finished(envelope_id: str, outcome: Outcome, reason: Reason | None) -> dict[str, Any]:
    return {
        "k_envelope": envelope_id,
        "new_outcome": outcome.value,
        "new_reason": None if reason is None else reason.value,
    }
