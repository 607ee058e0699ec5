"""The age-of-oldest gauge per inbox (``backbone.tracking.waiting``): from the store's
journeys, the oldest document routed to a recipient and not arrived yet, per inbox, on the
real store back-ends and on the tracker's injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from backbone.tracking import Tracker
from backbone.tracking.waiting import WaitingWatch, inbox_ages
from tests.support.tracking_fixtures import (
    BACKENDS,
    G01,
    G22,
    H41,
    H41_COMMUNE,
    LEDGER_START,
    TRACKING_NOW,
    Ledger,
    tracked_store,
)

pytestmark = pytest.mark.clock

INBOXES = {G22: "vdx.inbox.G22", H41: "vdx.inbox.hub", H41_COMMUNE: "vdx.inbox.hub"}


def test_an_inbox_shows_the_oldest_wait_of_any_recipient_it_serves() -> None:
    oldest = {
        H41: TRACKING_NOW - timedelta(hours=3),
        H41_COMMUNE: TRACKING_NOW - timedelta(hours=30),
        G22: TRACKING_NOW + timedelta(seconds=2),  # another replica's clock ahead: not negative
        "000.00.09.G99": TRACKING_NOW - timedelta(days=9),  # served by nobody: no inbox
    }
    assert inbox_ages(oldest, INBOXES.get, TRACKING_NOW) == {
        "vdx.inbox.hub": 30 * 3600.0,
        "vdx.inbox.G22": 0.0,
    }


@pytest.fixture(params=BACKENDS)
async def tracked(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with tracked_store(request.param, tmp_path) as pair:
        yield pair


async def test_only_documents_with_no_status_back_count_and_an_emptied_inbox_shows_zero(
    tracked: tuple[Ledger, Tracker],
) -> None:
    ledger, tracker = tracked
    first = await ledger.send(G22, (H41, H41_COMMUNE), 1)
    await ledger.send(G22, (H41,), 2)
    await ledger.send(H41, (G01,), 3)
    await ledger.status(H41_COMMUNE, G22, first.document_id, "01")  # arrived there
    routed_first = LEDGER_START + timedelta(minutes=5)  # the ledger: five minutes each
    assert await tracker.oldest_waiting() == {
        H41: routed_first,
        G01: routed_first + timedelta(minutes=10),
    }

    watch = WaitingWatch(tracker, {**INBOXES, G01: "vdx.inbox.G01"}.get, interval=60)
    ages = await watch.check()
    assert ages == {
        "vdx.inbox.hub": (TRACKING_NOW - routed_first).total_seconds(),
        "vdx.inbox.G01": (TRACKING_NOW - routed_first).total_seconds() - 600,
    }
    assert _gauge("vdx.inbox.hub") == ages["vdx.inbox.hub"]

    # Everything arrives at the hub's agencies (02 counts: the recipient has it).
    await ledger.status(H41, G22, first.document_id, "01")
    await ledger.status(H41, G22, ledger.document_id(G22, 2), "02")
    assert set(await watch.check()) == {"vdx.inbox.G01"}
    assert _gauge("vdx.inbox.hub") == 0


def _gauge(queue: str) -> float | None:
    return REGISTRY.get_sample_value("vdx_inbox_oldest_waiting_seconds", {"queue": queue})
