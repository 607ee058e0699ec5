"""Where a process's HTTP server listens by default (a module of its own, so that settings
can name it without loading the server)."""

from __future__ import annotations

__all__ = ["LOOPBACK"]

# /metrics and /readyz need no token: only the machine itself reaches them unless an
# operator sets ``http_host`` (e.g. 0.0.0.0 for a Prometheus scraping over the network).
LOOPBACK = "127.0.0.1"
