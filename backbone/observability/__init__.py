"""Metrics and the small HTTP server (`/metrics`, `/healthz`, `/readyz`).

Nothing is re-exported here: import :mod:`.metrics` or :mod:`.http`."""

__all__: list[str] = []
