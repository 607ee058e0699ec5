"""structlog set-up: JSON lines in production, readable output in a terminal.

Message-path log lines carry envelope_id, document_id, sender and outcome as fields; keys,
plaintext documents and credentials are never passed to a logger.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """JSON when asked, when ``VDX_LOG_FORMAT=json``, or when stderr is not a terminal."""
    if json is None:
        wanted = os.environ.get("VDX_LOG_FORMAT", "").lower()
        json = wanted == "json" or (wanted != "console" and not sys.stderr.isatty())
    level_name = (level or os.environ.get("VDX_LOG_LEVEL", "INFO")).upper()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
