"""Tracking beside a router: its API and page for the router's HTTP server, and the overdue
watch, over the router's own SQL store (there is nothing to track in a memory store). The
process running a replica hands a :class:`Tracking` to the router as an extension."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter

from backbone.clock import Clock, utc_now
from backbone.store import BatchingStore, SqlStore
from backbone.store.abc import Store
from backbone.tiers import TierModel
from backbone.tracking.api import tracking_api
from backbone.tracking.auth import TokenBook
from backbone.tracking.overdue import Announce, OverdueWatch
from backbone.tracking.page import tracking_page
from backbone.tracking.query import Tracker
from backbone.tracking.waiting import InboxOf, WaitingWatch

__all__ = ["Tracking", "TrackingOptions"]

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True, slots=True)
class TrackingOptions:
    tokens: Mapping[str, str] = field(default_factory=dict)  # token SHA-256 → holder
    overdue_interval: float = 300.0  # seconds between overdue checks
    inbox_age_interval: float = 60.0  # seconds between inbox age checks
    zone: str = DEFAULT_ZONE  # where due dates are days
    clock: Clock = utc_now  # when "now" is (tests inject a fixed one)


class Tracking:
    def __init__(
        self, tracker: Tracker, options: TrackingOptions, *, inbox_of: InboxOf | None = None
    ) -> None:
        """``inbox_of``: the inbox queue serving a recipient, for the age-of-oldest gauge
        per inbox (none without it)."""
        self.tracker = tracker
        self.options = options
        self.tokens = TokenBook(options.tokens)
        self.inbox_of = inbox_of

    @classmethod
    def for_store(
        cls,
        store: Store,
        tiers: TierModel,
        options: TrackingOptions,
        *,
        inbox_of: InboxOf | None = None,
    ) -> Tracking | None:
        """Tracking over ``store``'s tables; ``None`` unless it is a SQL store."""
        if isinstance(store, BatchingStore):
            store = store.store
        if not isinstance(store, SqlStore):
            return None
        tracker = Tracker(store.engine, tiers, zone=options.zone, clock=options.clock)
        return cls(tracker, options, inbox_of=inbox_of)

    def routers(self) -> list[APIRouter]:
        """The API and the page, for :func:`backbone.observability.http.make_app`."""
        return [tracking_api(self.tracker, self.tokens), tracking_page()]

    async def run(self, emit: Announce) -> None:
        """The overdue watch, announcing through ``emit``, and the inbox age gauge, until
        cancelled (a router :class:`~backbone.router.abc.Extension`)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch(emit).run())
            if self.inbox_of is not None:
                waiting = WaitingWatch(
                    self.tracker, self.inbox_of, interval=self.options.inbox_age_interval
                )
                group.create_task(waiting.run())

    def watch(self, announce: Announce) -> OverdueWatch:
        return OverdueWatch(self.tracker, announce, interval=self.options.overdue_interval)
