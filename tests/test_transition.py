"""Routing through a change, decided from the directory, the code, an injected instant and
the window alone: forward to one full heir within the window, refuse a split or a late
document naming the candidates, warn a closed sender within the window and refuse it after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backbone.directory import Directory
from backbone.errors import Reason
from backbone.router.transition import Deliver, Forward, Refuse, address, sender_verdict
from tests.test_directory_timeline import COMMUNE, DISTRICT, PROVINCE, reform

WINDOW = timedelta(days=180)
CLOSED = datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 2025-07-01 00:00 in Vietnam
WITHIN = CLOSED + WINDOW - timedelta(seconds=1)
PAST = CLOSED + WINDOW
OLD_DISTRICT = "000.20.32.H53"  # merged into DISTRICT in 2024, which merged into PROVINCE


@pytest.fixture(scope="module")
def directory() -> Directory:
    return reform()


def test_a_merged_code_is_forwarded_to_its_one_full_heir_within_the_window(
    directory: Directory,
) -> None:
    for at in (CLOSED, WITHIN):
        outcome = address(directory, DISTRICT, at, WINDOW)
        assert isinstance(outcome, Forward)
        assert (str(outcome.agency.organ_code), outcome.code, outcome.via) == (
            PROVINCE,
            DISTRICT,
            (DISTRICT,),
        )


def test_a_merged_code_is_refused_from_the_end_of_the_window_naming_its_heir(
    directory: Directory,
) -> None:
    outcome = address(directory, DISTRICT, PAST, WINDOW)
    assert outcome == Refuse(
        Reason.RECIPIENT_CLOSED,
        "closed on 2025-07-01; its transition window of 180 days has ended; send to its "
        f"successor instead: {PROVINCE}",
        (PROVINCE,),
    )


def test_a_zero_window_refuses_from_the_closing_instant(directory: Directory) -> None:
    outcome = address(directory, DISTRICT, CLOSED, timedelta(0))
    assert isinstance(outcome, Refuse)
    assert outcome.reason is Reason.RECIPIENT_CLOSED


def test_a_split_is_refused_within_the_window_naming_every_candidate(
    directory: Directory,
) -> None:
    outcome = address(directory, COMMUNE, CLOSED, WINDOW)
    assert isinstance(outcome, Refuse)
    assert outcome.reason is Reason.RECIPIENT_CLOSED
    assert set(outcome.candidates) == {"H53.101", "H53.102"}
    assert "was split: choose among its successors" in outcome.message


def test_the_window_of_a_chain_of_merges_runs_from_the_first_closing(
    directory: Directory,
) -> None:
    # Closed in 2024: long past its window by the 2025 reform, though its heir closed then.
    outcome = address(directory, OLD_DISTRICT, CLOSED, WINDOW)
    assert isinstance(outcome, Refuse)
    assert outcome.candidates == (PROVINCE,)
    within = address(directory, OLD_DISTRICT, CLOSED, timedelta(days=600))
    assert isinstance(within, Forward)
    assert within.via == (OLD_DISTRICT, DISTRICT)


def test_a_paired_code_routes_to_its_agency_and_a_primary_one_to_itself(
    directory: Directory,
) -> None:
    paired = address(directory, "H53", CLOSED, WINDOW)
    primary = address(directory, PROVINCE, CLOSED, WINDOW)
    assert isinstance(paired, Deliver)
    assert str(paired.agency.organ_code) == PROVINCE
    assert paired == primary


def test_a_former_code_of_an_agency_in_service_goes_to_it_and_is_reported(
    directory: Directory,
) -> None:
    outcome = address(directory, "000.22.32.H53", CLOSED, WINDOW)
    assert isinstance(outcome, Forward)
    assert str(outcome.agency.organ_code) == "H53.101"


def test_an_unknown_or_not_yet_effective_code_is_recipient_unknown(
    directory: Directory,
) -> None:
    before = CLOSED - timedelta(seconds=1)
    assert address(directory, "000.00.00.G99", CLOSED, WINDOW) == Refuse(
        Reason.RECIPIENT_UNKNOWN, "not in the directory"
    )
    assert address(directory, "H53.101", before, WINDOW) == Refuse(
        Reason.RECIPIENT_UNKNOWN, "inactive in the directory"
    )


def test_a_closed_sender_is_warned_within_the_window_and_refused_after(
    directory: Directory,
) -> None:
    district = directory.agency(DISTRICT)
    before = sender_verdict(directory, district, CLOSED - timedelta(seconds=1), WINDOW)
    assert (before.warning, before.refusal) == (None, None)
    within = sender_verdict(directory, district, WITHIN, WINDOW)
    assert within.refusal is None
    assert within.warning == (
        f"sender {DISTRICT} closed on 2025-07-01; accepted until its transition window ends "
        f"on 2025-12-28, refused from then; its successors: {PROVINCE}"
    )
    past = sender_verdict(directory, district, PAST, WINDOW)
    assert past.refusal is not None
    assert past.refusal.reason is Reason.SENDER_CLOSED
    assert past.refusal.candidates == (PROVINCE,)
    assert "it may no longer send" in past.refusal.message
