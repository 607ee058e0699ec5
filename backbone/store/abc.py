"""The store's interface and value objects, in one place (as aio-pika keeps its ``abc``).

The router writes routing and dedup state through :class:`Store`; tracking reads the same
tables. Behaviour lives beside this module: ``sql`` (SQLite and PostgreSQL), ``memory``,
``batching`` (group commit), ``journeys`` (one row per document and recipient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason

__all__ = [
    "NOT_RECORDED",
    "Claim",
    "ClaimState",
    "Delivery",
    "OpenChunked",
    "Outcome",
    "Refusal",
    "Routing",
    "Store",
    "SubmissionKey",
]


class Outcome(StrEnum):
    """What finally happened to an envelope the router accepted for processing."""

    ROUTED = "routed"
    REJECTED = "rejected"
    UNROUTABLE = "unroutable"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class SubmissionKey:
    """What makes two submissions "the same document from the same sender".

    ``variant`` separates what a sender may legitimately send more than once under one
    DocumentId: ``document:0`` (new) … ``document:3`` (replacement), ``status:03`` …
    ``payload_digest`` tells a byte-identical resend (same digest: answer with the original
    outcome) from a different payload under the same identity (refused).

    The original sender is part of the key through ``document_id``: the router routes only
    envelopes whose DocumentId names it (``backbone.envelope.check_binding``), so a status's
    key (its sender, the DocumentId, its code) is that of one document of one sender, and
    nobody can claim another sender's DocumentId before it is sent.
    """

    sender: str
    document_id: str
    variant: str
    payload_digest: str

    @classmethod
    def of(cls, header: EnvelopeHeader) -> SubmissionKey:
        variant = (
            f"status:{header.status_code}"
            if header.status_code is not None
            else f"document:{header.business_type}"
        )
        return cls(header.sender, header.document_id, variant, header.payload_digest)


class ClaimState(StrEnum):
    NEW = "new"  # first time seen: route it
    RESUMED = "resumed"  # same envelope, not finished (a redelivery after a crash): route again
    DUPLICATE = "duplicate"  # same payload, finished: answer with the original outcome
    CONFLICT = "conflict"  # same identity, different payload: refuse

    @property
    def routes(self) -> bool:
        """Whether the claimant goes on to route the envelope."""
        return self in (ClaimState.NEW, ClaimState.RESUMED)


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    envelope_id: str  # the envelope that first claimed the identity
    outcome: Outcome | None  # its outcome when finished


@dataclass(frozen=True, slots=True)
class Delivery:
    """One routed envelope for one recipient: the history statuses and flows are checked on."""

    envelope_id: str
    document_id: str
    sender: str
    recipient: str
    kind: str  # "document" | "status"
    business_type: int | None
    status_code: str | None
    at: datetime
    due_date: date | None = None  # a document's DueDate, when its header carried one
    status_note: str | None = None  # a status's Description, when its header carried one
    forwarded_to: str | None = None  # the heir it went to instead of ``recipient`` (closed)
    directory_version: str | None = None  # the directory version the route was decided on

    def reached(self, code: str) -> bool:
        """Whether the envelope went to ``code``: as addressed, or forwarded to it."""
        return code in (self.recipient, self.forwarded_to)


@dataclass(frozen=True, slots=True)
class Routing:
    """How the router decided a route, kept with its delivery rows for tracking: the
    directory version it used and, for each recipient code that had closed or become a
    former code, the agency's code it was forwarded to (``backbone.router.transition``)."""

    directory_version: str | None = None
    forwarded: tuple[tuple[str, str], ...] = ()  # (code as addressed, code delivered to)
    # A status about a document forwarded to its sender (or a take-back sent to the
    # successor): (successor, the code the document was addressed to), so the journey of
    # record (document, original sender, addressed code) is the one it moves.
    stands_for: tuple[tuple[str, str], ...] = ()

    def forwarded_to(self, recipient: str) -> str | None:
        return next((to for code, to in self.forwarded if code == recipient), None)

    def of_record(self, code: str) -> str:
        """The code whose journey ``code`` acts in: itself, or the closed code it succeeded."""
        return next((closed for heir, closed in self.stands_for if heir == code), code)


NOT_RECORDED = Routing()  # a route recorded without its decision (older callers, tests)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An authenticated envelope the router refused, kept so that its sender can always
    look it up (tracking), whatever became of the event that told it."""

    envelope_id: str
    document_id: str
    sender: str
    kind: str  # "document" | "status"
    status_code: str | None
    reason: str  # a ``Reason`` value
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OpenChunked:
    """A chunked document whose header the router routed, kept in the store until it
    expires, so that any replica, or a replica restarted, checks and forwards its chunks
    (``backbone.router.chunks``). ``passed``: the chunk indexes forwarded so far."""

    envelope_id: str
    sender: str
    publisher: str | None  # the broker account that published the header
    header_message: bytes  # the signed header message as routed: its chunk digests
    plan: tuple[tuple[str, tuple[str, ...]], ...]  # tier exchange → recipient routing keys
    chunk_count: int
    opened_at: datetime
    passed: frozenset[int] = frozenset()

    @property
    def complete(self) -> bool:
        return len(self.passed) >= self.chunk_count


class Store(Protocol):
    """Routing and dedup state shared by router replicas (SQLite file or PostgreSQL)."""

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        """Atomically claim ``identity`` for ``envelope_id`` (safe across replicas)."""
        ...

    async def claim_route(self, header: EnvelopeHeader, routing: Routing = NOT_RECORDED) -> Claim:
        """:meth:`claim` the header's identity for its envelope and, when the claim is
        ``NEW`` or ``RESUMED`` (the router is about to publish it), :meth:`record_routed`
        in the same transaction, at the moment of the claim: one round trip for what every
        routed envelope needs."""
        ...

    async def finish(
        self, envelope_id: str, outcome: Outcome, *, reason: Reason | None = None
    ) -> None:
        """Record how a claimed envelope ended."""
        ...

    async def record_routed(
        self, header: EnvelopeHeader, at: datetime, routing: Routing = NOT_RECORDED
    ) -> None:
        """Mark the envelope routed and remember one :class:`Delivery` per recipient (with
        ``routing``'s version and forward), in one transaction."""
        ...

    async def history(self, document_id: str, *, sender: str, recipient: str) -> Sequence[Delivery]:
        """Everything routed about ``document_id`` between the two agencies, either
        direction, oldest first; a document forwarded to ``recipient`` (or ``sender``)
        counts as sent to it (:meth:`Delivery.reached`)."""
        ...

    async def record_refusal(self, refusal: Refusal) -> None:
        """Keep a refusal (once per envelope: a redelivered refusal is not kept twice)."""
        ...

    async def refusals(self, document_id: str, *, sender: str) -> Sequence[Refusal]:
        """The refusals of ``sender``'s envelopes about ``document_id``, oldest first."""
        ...

    async def open_chunked(self, document: OpenChunked) -> OpenChunked:
        """Keep ``document`` unless one is kept already under its envelope id (its header
        again: nothing is reset), and return the one kept, with the chunks passed."""
        ...

    async def chunked(self, envelope_id: str) -> OpenChunked | None:
        """The chunked document kept under ``envelope_id``, with the chunks passed."""
        ...

    async def chunk_passed(self, envelope_id: str, index: int) -> int:
        """Record that chunk ``index`` of ``envelope_id`` was forwarded (once, however often
        it is recorded); return how many of its chunks have passed."""
        ...

    async def chunk_has_passed(self, envelope_id: str, index: int) -> bool:
        """Whether chunk ``index`` of ``envelope_id`` was recorded as passed."""
        ...

    async def chunked_under_way(self, sender: str, *, since: datetime) -> tuple[int, int]:
        """How many chunked documents opened after ``since`` still lack a chunk: of
        ``sender``, and of every sender."""
        ...

    async def forget_chunked(self, *, before: datetime) -> None:
        """Forget the chunked documents opened at or before ``before``."""
        ...

    async def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...

    async def close(self) -> None: ...
