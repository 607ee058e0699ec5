"""How long each inbox's oldest document has waited: the age-of-oldest gauge per inbox.

RabbitMQ 3.10 exports no head-message age for quorum queues, so the age comes from the
store: the oldest document routed to a recipient and not arrived yet (its journey still
``routed``: no status 01 back), per inbox (a recipient's connected system, named as the
broker names the queue, so rules can join it with RabbitMQ's own queue metrics). Every
replica reports the same store-wide value: aggregate with ``max``. An inbox whose documents
all arrived shows 0 once it has shown an age, so a recovered inbox resolves its alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from backbone.observability import metrics
from backbone.tracking.periodic import check_every
from backbone.tracking.query import Tracker

__all__ = ["InboxOf", "WaitingWatch", "inbox_ages"]


InboxOf = Callable[[str], str | None]
"""The inbox queue a recipient (organ code) is served by; ``None`` when none (unlisted)."""


def inbox_ages(
    oldest: Mapping[str, datetime], inbox_of: InboxOf, now: datetime
) -> dict[str, float]:
    """Seconds the oldest waiting document of each inbox has waited, from the oldest per
    recipient (a hub's inbox: the oldest of its agencies). Never negative (clock skew
    between replicas)."""
    ages: dict[str, float] = {}
    for recipient, routed_at in oldest.items():
        queue = inbox_of(recipient)
        if queue is None:
            continue
        age = max(0.0, (now - routed_at).total_seconds())
        ages[queue] = max(age, ages.get(queue, 0.0))
    return ages


class WaitingWatch:
    """Sets ``vdx_inbox_oldest_waiting_seconds`` every ``interval`` seconds."""

    def __init__(self, tracker: Tracker, inbox_of: InboxOf, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the inbox age check interval must be positive")
        self._tracker = tracker
        self._inbox_of = inbox_of
        self._interval = interval
        self._shown: set[str] = set()

    async def check(self) -> dict[str, float]:
        """Set the gauge once; return the ages set (inboxes with nothing waiting: absent)."""
        ages = inbox_ages(await self._tracker.oldest_waiting(), self._inbox_of, self._tracker.now())
        for queue in self._shown - ages.keys():
            metrics.INBOX_OLDEST_WAITING.labels(queue).set(0)
        for queue, age in ages.items():
            metrics.INBOX_OLDEST_WAITING.labels(queue).set(age)
        self._shown |= ages.keys()
        return ages

    async def run(self) -> None:
        """Check until cancelled; a failing check is logged and tried again next time."""
        await check_every(self.check, self._interval, "tracking.inbox_age_check_failed")
