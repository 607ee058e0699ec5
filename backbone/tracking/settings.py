"""Tracking's configuration keys, read from the router replica's file (
:class:`backbone.replica.Settings` combines them with the router's)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from backbone.broker.settings import FileSettings
from backbone.tracking.auth import TokenBook
from backbone.tracking.wiring import DEFAULT_ZONE, TrackingOptions

__all__ = ["TrackingSettings"]


class TrackingSettings(FileSettings):
    """Tokens, how often to look for overdue documents, and the zone due dates are days in."""

    tracking_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Tracking API tokens: SHA-256 (hex) of each token → an organ code, "
        "several separated by commas (a hub's staff), or 'operator' (`backbone track token` "
        "mints one)",
    )
    overdue_check_seconds: float = Field(
        default=300.0, gt=0, description="Seconds between checks for overdue documents"
    )
    inbox_age_check_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between updates of vdx_inbox_oldest_waiting_seconds (the age "
        "of each inbox's oldest document not arrived yet, from the store)",
    )
    tracking_time_zone: str = Field(
        default=DEFAULT_ZONE, description="Where a document's due date is a day (IANA name)"
    )

    @field_validator("tracking_tokens")
    @classmethod
    def _known_holders(cls, tokens: dict[str, str]) -> dict[str, str]:
        TokenBook(tokens)  # raises ValueError for a malformed hash or holder
        return tokens

    @field_validator("tracking_time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (an IANA name)") from None
        return zone

    def tracking_options(self) -> TrackingOptions:
        return TrackingOptions(
            tokens=self.tracking_tokens,
            overdue_interval=self.overdue_check_seconds,
            inbox_age_interval=self.inbox_age_check_seconds,
            zone=self.tracking_time_zone,
        )
