"""Tracking: every document's journey to each recipient, from what the router's store
records — a query API, a web page, a command, and the overdue check. See docs/tracking.md.
"""

from backbone.tracking.api import tracking_api
from backbone.tracking.auth import OPERATOR, TokenBook, hash_token, mint_token
from backbone.tracking.model import (
    DocumentTrack,
    Journey,
    JourneyPage,
    OverdueAgency,
    OverdueOverview,
    Principal,
    RecipientTrack,
    State,
    Step,
    StepKind,
)
from backbone.tracking.overdue import OverdueWatch, overdue_event
from backbone.tracking.page import tracking_page
from backbone.tracking.query import JourneyFilter, Tracker
from backbone.tracking.wiring import Tracking, TrackingOptions

__all__ = [
    "OPERATOR",
    "DocumentTrack",
    "Journey",
    "JourneyFilter",
    "JourneyPage",
    "OverdueAgency",
    "OverdueOverview",
    "OverdueWatch",
    "Principal",
    "RecipientTrack",
    "State",
    "Step",
    "StepKind",
    "TokenBook",
    "Tracker",
    "Tracking",
    "TrackingOptions",
    "hash_token",
    "mint_token",
    "overdue_event",
    "tracking_api",
    "tracking_page",
]
