"""A router replica's configuration file: the router's keys and tracking's, in one place."""

from __future__ import annotations

from backbone.router.settings import RouterSettings
from backbone.tracking.settings import TrackingSettings

__all__ = ["Settings"]


class Settings(RouterSettings, TrackingSettings):
    """Everything ``backbone router run`` reads (README, "Running the router")."""
