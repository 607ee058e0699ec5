"""The published OpenAPI description of the router's HTTP API (tracking included).

Regenerate the committed copy with ``python -m backbone.tracking.openapi``; a test fails
while ``docs/tracking-openapi.json`` differs from what the router serves at /openapi.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from backbone.observability.http import make_app
from backbone.tiers import DEFAULT_PROFILE, TierModel
from backbone.tracking.query import Tracker
from backbone.tracking.wiring import Tracking, TrackingOptions

__all__ = ["OPENAPI_PATH", "openapi_json", "router_openapi"]

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "tracking-openapi.json"


def router_openapi() -> dict[str, Any]:
    """What the router's app describes at /openapi.json (its checks and tracking's store
    play no part in it, so none are opened)."""
    engine = create_async_engine("sqlite+aiosqlite:///unused.db")  # never connected
    tracking = Tracking(Tracker(engine, TierModel.named(DEFAULT_PROFILE)), TrackingOptions())
    return make_app({}, title="vdx router", routers=tracking.routers()).openapi()


def openapi_json(description: dict[str, Any]) -> str:
    return json.dumps(description, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_PATH.write_text(openapi_json(router_openapi()), encoding="utf-8")
