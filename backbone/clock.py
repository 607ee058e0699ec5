"""Time as the product takes it: an injectable clock of timezone-aware UTC instants, and
the two local readings of it that official documents use.

Nothing in the product reads the machine's local date or zone: a day is always a day
*somewhere* (edXML's Vietnam local time, or the configured tracking zone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo

__all__ = ["VIETNAM", "Clock", "edxml_now", "start_of_day", "today_in", "utc_now"]

Clock = Callable[[], datetime]  # returns an aware instant; tests inject fixed ones

# edXML's dates and timestamps are Vietnam local time with no zone written (QCVN 102).
VIETNAM = timezone(timedelta(hours=7), "ICT")


def utc_now() -> datetime:
    return datetime.now(UTC)


def today_in(zone: tzinfo, clock: Clock = utc_now) -> date:
    """The day it is in ``zone`` at ``clock()``: never the machine's own date."""
    return clock().astimezone(zone).date()


def start_of_day(day: date, zone: tzinfo) -> datetime:
    """The instant ``day`` begins in ``zone`` (midnight there), as an aware UTC instant."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def edxml_now(clock: Clock = utc_now) -> datetime:
    """edXML's Timestamp for ``clock()``: Vietnam local time, whole seconds, no zone."""
    return clock().astimezone(VIETNAM).replace(tzinfo=None, microsecond=0)
