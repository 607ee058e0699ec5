"""The end of a soak run, counted from the recipients' folders, the sender's status/ and
what G01's client was told (not from logs): what was lost, delivered twice, delivered
wrongly, or left unanswered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backbone.wire.events import EventType
from tests.soak.traffic import Ledger, delivered, statuses_at_sender

__all__ = ["Counts", "count", "unanswered"]


@dataclass
class Counts:
    """The end of the run, counted from folders and queues (not from logs)."""

    documents: int = 0  # distinct documents accepted for routing (G22's and G01's)
    deliveries: int = 0  # (document, recipient) pairs expected
    delivered: int = 0  # pairs found in the recipients' inbox/
    duplicates: int = 0  # inbox entries beyond the first of a pair
    lost: int = 0  # pairs expected, not delivered
    unexpected: int = 0  # inbox entries nobody should have received (a refused envelope)
    statuses: int = 0  # pairs whose status 01 reached the sender
    resent: int = 0  # envelopes sent twice, same bytes
    duplicates_told: int = 0  # of those, answered `duplicate`
    resends_routed_again: int = 0  # others answered `routed` again (resumed after the kill)
    refused: int = 0  # envelopes that must be rejected
    rejections_told: int = 0  # of those, answered `rejected`
    refusals_dead_lettered: int = 0  # others dead-lettered (sender told `dead_lettered`)
    sender_failed: int = 0  # files in G22's failed/ (none should be)
    routed_told_twice: int = 0  # G01 documents with more than one `routed` event
    operator_events: int = 0

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lost or self.duplicates or self.unexpected:
            found.append(
                f"{self.lost} lost, {self.duplicates} delivered twice, "
                f"{self.unexpected} delivered that should not have been"
            )
        if self.statuses != self.deliveries:
            found.append(f"{self.deliveries - self.statuses} statuses 01 missing at the sender")
        unanswered = self.resent - self.duplicates_told - self.resends_routed_again
        if unanswered:
            found.append(f"{unanswered} resends not answered")
        untold = self.refused - self.rejections_told - self.refusals_dead_lettered
        if untold:
            found.append(f"{untold} refusals not told the sender")
        if self.sender_failed:
            found.append(f"{self.sender_failed} of G22's documents in failed/")
        return found


def unanswered(ledger: Ledger) -> int:
    """Resends and refused envelopes the router has not answered yet (any answer)."""
    events = ledger.events
    resends = sum(
        1
        for doc in ledger.resent
        if not events[EventType.DUPLICATE][doc] and events[EventType.ROUTED][doc] < 2
    )
    refusals = sum(
        1
        for doc in ledger.refused
        if not events[EventType.REJECTED][doc] and not events[EventType.DEAD_LETTERED][doc]
    )
    return resends + refusals


def count(ledger: Ledger, folders: dict[str, Path], sender_folder: Path) -> Counts:
    inboxes = delivered(folders)
    expected = {(doc, to) for doc, recipients in ledger.documents.items() for to in recipients}
    found = {(doc, to) for to, inbox in inboxes.items() for doc in inbox}
    statuses = (statuses_at_sender(sender_folder) | ledger.raw_statuses) & expected
    events = ledger.events
    return Counts(
        documents=len(ledger.documents),
        deliveries=len(expected),
        delivered=len(found & expected),
        duplicates=sum(n - 1 for inbox in inboxes.values() for n in inbox.values()),
        lost=len(expected - found),
        unexpected=len(found - expected),
        statuses=len(statuses),
        resent=len(ledger.resent),
        duplicates_told=sum(1 for doc in ledger.resent if events[EventType.DUPLICATE][doc]),
        # A resend of an envelope the killed router had routed but not yet recorded as done
        # is routed again (resumed: the recipients' adapters drop the repeat) and answered
        # with that outcome, `routed`, instead of `duplicate`.
        resends_routed_again=sum(
            1
            for doc in ledger.resent
            if not events[EventType.DUPLICATE][doc] and events[EventType.ROUTED][doc] > 1
        ),
        refused=len(ledger.refused),
        rejections_told=sum(1 for doc in ledger.refused if events[EventType.REJECTED][doc]),
        refusals_dead_lettered=sum(
            1
            for doc in ledger.refused
            if not events[EventType.REJECTED][doc] and events[EventType.DEAD_LETTERED][doc]
        ),
        sender_failed=len(list((sender_folder / "failed").glob("*.edxml"))),
        routed_told_twice=sum(1 for n in events[EventType.ROUTED].values() if n > 1),
        operator_events=ledger.operator_events,
    )
