"""Time as the PKI sees it: always timezone-aware UTC, printed as ``2026-01-01T00:00:00Z``."""

from __future__ import annotations

from datetime import UTC, datetime

from backbone.clock import Clock, utc_now

__all__ = ["Clock", "iso_z", "utc_now"]


def iso_z(moment: datetime) -> str:
    """``2026-01-01T00:00:00Z``: the form every PKI message uses."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
