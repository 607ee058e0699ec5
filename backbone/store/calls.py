"""The calls :meth:`SqlStore.apply <backbone.store.sql.SqlStore.apply>` runs in one
transaction: one type per store method, each holding that method's arguments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.store.abc import NOT_RECORDED, Outcome, Routing, SubmissionKey

__all__ = ["Call", "ClaimCall", "ClaimRouteCall", "FinishCall", "RoutedCall"]


@dataclass(frozen=True, slots=True)
class ClaimCall:
    """:meth:`SqlStore.claim`, for :meth:`SqlStore.apply`."""

    identity: SubmissionKey
    envelope_id: str


@dataclass(frozen=True, slots=True)
class RoutedCall:
    """:meth:`SqlStore.record_routed`, for :meth:`SqlStore.apply`."""

    header: EnvelopeHeader
    at: datetime
    routing: Routing = NOT_RECORDED


@dataclass(frozen=True, slots=True)
class ClaimRouteCall:
    """:meth:`SqlStore.claim_route`, for :meth:`SqlStore.apply`."""

    header: EnvelopeHeader
    routing: Routing = NOT_RECORDED

    @property
    def claim(self) -> ClaimCall:
        return ClaimCall(SubmissionKey.of(self.header), self.header.envelope_id)


@dataclass(frozen=True, slots=True)
class FinishCall:
    """:meth:`SqlStore.finish`, for :meth:`SqlStore.apply`."""

    envelope_id: str
    outcome: Outcome
    reason: Reason | None = None


Call = ClaimCall | ClaimRouteCall | RoutedCall | FinishCall
