"""The overdue check: journeys past their due date and not finished by the recipient
(never one that arrived already past it: see ``backbone.tracking.query._journeys``).

Each check flags every newly overdue journey once (a row in the store's ``overdue`` table;
its primary key makes that once across router replicas), counts it in
``vdx_overdue_flagged_total{tier}``, and announces an ``overdue`` event to the document's
sender. It then sets ``vdx_documents_overdue{tier}`` to the journeys overdue now (every
replica reports the same store-wide number: aggregate it with ``max``, not ``sum``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from backbone.observability import metrics
from backbone.tracking.model import Journey, Principal
from backbone.tracking.periodic import check_every
from backbone.tracking.query import Tracker
from backbone.wire.events import Event, EventType

__all__ = ["Announce", "OverdueWatch", "overdue_event"]

log = structlog.get_logger(__name__)

Announce = Callable[[Event], Awaitable[None]]


def overdue_event(journey: Journey) -> Event:
    """The event telling the sender that ``journey``'s recipient missed the due date."""
    return Event(
        type=EventType.OVERDUE,
        party=journey.sender,
        document_id=journey.document_id,
        sender=journey.sender,
        recipients=(journey.recipient,),
        kind="document",
        message=f"due {journey.due_date}, not completed by {journey.recipient} "
        f"(state: {journey.state})",
    )


class OverdueWatch:
    """Runs the check every ``interval`` seconds; :meth:`check` runs one."""

    def __init__(self, tracker: Tracker, announce: Announce, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the overdue check interval must be positive")
        self._tracker = tracker
        self._announce = announce
        self._interval = interval

    async def check(self) -> list[Journey]:
        """Flag and announce what became overdue; return it."""
        flagged: list[Journey] = []
        for journey in await self._tracker.unflagged_overdue():
            if not await self._tracker.flag(journey, self._tracker.now()):
                continue  # another replica was first
            try:
                await self._announce(overdue_event(journey))
            except BaseException:
                await self._tracker.unflag(journey)  # flagged only once it was announced
                raise
            metrics.OVERDUE_FLAGGED.labels(journey.tier).inc()
            flagged.append(journey)
            log.info(
                "tracking.overdue",
                document_id=journey.document_id,
                sender=journey.sender,
                recipient=journey.recipient,
                due_date=str(journey.due_date),
                outcome="flagged",
            )
        overview = await self._tracker.overview(Principal(operator=True))
        for tier, count in overview.by_tier.items():
            metrics.DOCUMENTS_OVERDUE.labels(tier).set(count)
        return flagged

    async def run(self) -> None:
        """Check until cancelled; a failing check is logged and tried again next time."""
        await check_every(self.check, self._interval, "tracking.overdue_check_failed")
