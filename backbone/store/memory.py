"""The in-memory store: the SQL store's semantics for unit tests of other components.

Every method runs without awaiting, so each is atomic on the event loop without a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from backbone.clock import Clock, utc_now
from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.store.abc import (
    NOT_RECORDED,
    Claim,
    ClaimState,
    Delivery,
    OpenChunked,
    Outcome,
    Refusal,
    Routing,
    SubmissionKey,
)
from backbone.store.rules import judge, utc

__all__ = ["MemoryStore"]

_Key = tuple[str, str, str]  # sender, document_id, variant


@dataclass(slots=True)
class _Held:
    payload_digest: str
    envelope_id: str
    outcome: Outcome | None = None


class MemoryStore:
    """A :class:`~backbone.store.abc.Store` in process memory, lost on exit."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock  # when an envelope routed by claim_route was routed
        self._claims: dict[_Key, _Held] = {}
        self._by_envelope: dict[str, _Key] = {}
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._refusals: dict[str, Refusal] = {}
        self._chunked: dict[str, OpenChunked] = {}  # passed kept in ``_passed``
        self._passed: dict[str, set[int]] = {}

    async def claim(self, identity: SubmissionKey, envelope_id: str) -> Claim:
        key = (identity.sender, identity.document_id, identity.variant)
        held = self._claims.get(key)
        if held is None:
            if envelope_id in self._by_envelope:
                return self._envelope_taken(envelope_id)
            self._claims[key] = _Held(identity.payload_digest, envelope_id)
            self._by_envelope[envelope_id] = key
            return Claim(ClaimState.NEW, envelope_id, None)
        state = judge(identity, held.payload_digest, held.outcome)
        claim = Claim(state, held.envelope_id, held.outcome)
        if state is ClaimState.RESUMED and held.envelope_id != envelope_id:
            if envelope_id in self._by_envelope:
                return self._envelope_taken(envelope_id)
            del self._by_envelope[held.envelope_id]
            held.envelope_id = envelope_id
            self._by_envelope[envelope_id] = key
        return claim

    async def claim_route(self, header: EnvelopeHeader, routing: Routing = NOT_RECORDED) -> Claim:
        claim = await self.claim(SubmissionKey.of(header), header.envelope_id)
        if claim.state.routes:
            await self.record_routed(header, self._clock(), routing)
        return claim

    async def finish(
        self, envelope_id: str, outcome: Outcome, *, reason: Reason | None = None
    ) -> None:
        # ``reason`` is for operators reading the SQL tables; no Store call returns it.
        self._finish(envelope_id, outcome)

    async def record_routed(
        self, header: EnvelopeHeader, at: datetime, routing: Routing = NOT_RECORDED
    ) -> None:
        at = utc(at)
        self._finish(header.envelope_id, Outcome.ROUTED)
        for recipient in header.recipients:
            self._deliveries.setdefault(
                (header.envelope_id, recipient),
                Delivery(
                    envelope_id=header.envelope_id,
                    document_id=header.document_id,
                    sender=header.sender,
                    recipient=recipient,
                    kind=str(header.kind),
                    business_type=header.business_type,
                    status_code=header.status_code,
                    at=at,
                    due_date=header.due_date,
                    status_note=header.status_note,
                    forwarded_to=routing.forwarded_to(recipient),
                    directory_version=routing.directory_version,
                ),
            )

    async def history(self, document_id: str, *, sender: str, recipient: str) -> Sequence[Delivery]:
        found = [
            delivery
            for delivery in self._deliveries.values()
            if delivery.document_id == document_id
            and (
                (delivery.sender == sender and delivery.reached(recipient))
                or (delivery.sender == recipient and delivery.reached(sender))
            )
        ]
        return sorted(found, key=lambda d: (d.at, d.envelope_id, d.recipient))

    async def record_refusal(self, refusal: Refusal) -> None:
        self._refusals.setdefault(refusal.envelope_id, refusal)

    async def refusals(self, document_id: str, *, sender: str) -> Sequence[Refusal]:
        found = [
            refusal
            for refusal in self._refusals.values()
            if refusal.document_id == document_id and refusal.sender == sender
        ]
        return sorted(found, key=lambda r: (r.at, r.envelope_id))

    async def open_chunked(self, document: OpenChunked) -> OpenChunked:
        self._chunked.setdefault(document.envelope_id, replace(document, passed=frozenset()))
        kept = await self.chunked(document.envelope_id)
        assert kept is not None
        return kept

    async def chunked(self, envelope_id: str) -> OpenChunked | None:
        kept = self._chunked.get(envelope_id)
        if kept is None:
            return None
        return replace(kept, passed=frozenset(self._passed.get(envelope_id, ())))

    async def chunk_passed(self, envelope_id: str, index: int) -> int:
        passed = self._passed.setdefault(envelope_id, set())
        passed.add(index)
        return len(passed)

    async def chunk_has_passed(self, envelope_id: str, index: int) -> bool:
        return index in self._passed.get(envelope_id, ())

    async def chunked_under_way(self, sender: str, *, since: datetime) -> tuple[int, int]:
        since = utc(since)
        under_way = [
            kept.sender
            for envelope_id, kept in self._chunked.items()
            if utc(kept.opened_at) > since
            and len(self._passed.get(envelope_id, ())) < kept.chunk_count
        ]
        return under_way.count(sender), len(under_way)

    async def forget_chunked(self, *, before: datetime) -> None:
        before = utc(before)
        for envelope_id in [e for e, k in self._chunked.items() if utc(k.opened_at) <= before]:
            del self._chunked[envelope_id]
            self._passed.pop(envelope_id, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _finish(self, envelope_id: str, outcome: Outcome) -> None:
        key = self._by_envelope.get(envelope_id)
        if key is not None:
            self._claims[key].outcome = outcome

    def _envelope_taken(self, envelope_id: str) -> Claim:
        # The envelope id already holds another identity: a reused id is never routed.
        held = self._claims[self._by_envelope[envelope_id]]
        return Claim(ClaimState.CONFLICT, envelope_id, held.outcome)
