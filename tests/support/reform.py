"""The test exchange after a small reform (docs/directory.md, "Routing through a change"):
the commune 000.07.12.H41 merged into its province 000.00.00.H41 (one full successor) and
the bureau 000.00.05.G01 split between 000.00.00.G22 and 000.00.00.H41, on 2025-07-01.
The router's injected clock starts the day after it, within the transition window."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from backbone.directory import Directory

__all__ = [
    "CHANGES",
    "G01",
    "G22",
    "H41",
    "H41_COMMUNE",
    "PAST",
    "REFORM",
    "WITHIN",
    "Clock",
    "reformed",
]

G22, G01, H41, H41_COMMUNE = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41", "000.07.12.H41"
REFORM = "2025-07-01"  # starts at 2025-06-30 17:00 UTC (Asia/Ho_Chi_Minh)
WITHIN = datetime(2025, 7, 2, tzinfo=UTC)
PAST = datetime(2026, 7, 1, tzinfo=UTC)  # 180 days after the reform have gone by
CHANGES: dict[str, dict[str, Any]] = {
    H41: {"paired_code": "H41"},  # its Decision 20/2020 code
    # The commune merged into its province; the bureau split between two agencies.
    H41_COMMUNE: {
        "status": "closed",
        "closes": REFORM,
        "successors": [{"organ_code": H41, "share": "full"}],
    },
    G01: {
        "status": "closed",
        "closes": REFORM,
        "successors": [
            {"organ_code": G22, "share": "partial"},
            {"organ_code": H41, "share": "partial"},
        ],
    },
}


def reformed(
    directory: Directory, more: Mapping[str, Mapping[str, Any]] | None = None
) -> Directory:
    """The test exchange's directory after the reform (same agencies, accounts, hubs), with
    ``more`` changes by organ code."""
    changes = {**CHANGES, **(more or {})}
    agencies = [
        agency.model_dump(mode="json", exclude_unset=True) | changes.get(str(agency.organ_code), {})
        for agency in directory.agencies
    ]
    hubs = [hub.model_dump(mode="json", exclude_unset=True) for hub in directory.hubs]
    return Directory.from_entries(agencies, hubs, tiers=directory.tiers)


class Clock:
    """The router's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = WITHIN

    def __call__(self) -> datetime:
        return self.now
