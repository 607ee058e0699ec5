"""A router replica as a process: the router, tracking (API, page, overdue watch) and the
HTTP server wired together from one settings file. It is the one place that knows both
the router and tracking; neither imports the other."""

from __future__ import annotations

from backbone.replica.cli import build_router
from backbone.replica.settings import Settings

__all__ = ["Settings", "build_router"]
