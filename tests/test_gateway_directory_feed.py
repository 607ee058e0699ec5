"""The gateway's agency lists (getAgenciesList, getAgenciesListQD20, getSynchronizeUnit)
answered from the directory, with agencies in both code formats (testkit's world), for an
instant given as the gateway's clock gives it (fixed here): an agency is in service or not as
the router decides at that instant, whatever the day the version was applied."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.gateway.directory_feed import agencies, agencies_qd20, synchronize_units
from backbone.directory import Directory, DirectoryFile
from backbone.router.transition import Deliver, address
from testkit import build_directory

DIRECTORY = build_directory()
AT = datetime(2025, 7, 2, 3, 0, tzinfo=UTC)  # the gateway's clock: the day after the merge


def _by_id(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["id"]: row for row in rows}


def test_every_active_agency_is_listed_with_its_parent_in_its_own_format() -> None:
    listed = _by_id(agencies(DIRECTORY, AT))
    assert set(listed) == {str(agency.organ_code) for agency in DIRECTORY.agencies}
    assert listed["000.21.32.H53"]["pid"] == "000.00.32.H53"
    assert listed["H53.318.02"]["pid"] == "H53.318"
    assert listed["000.00.00.G22"]["pid"] == ""


def test_the_qd20_list_gives_code102_only_for_a_qcvn_102_code_and_filters_by_level() -> None:
    listed = _by_id(agencies_qd20(DIRECTORY, None, AT))
    assert listed["000.00.32.H53"]["code102"] == "000.00.32.H53"
    assert listed["H01.151"]["code"] == "H01.151"
    assert listed["H01.151"]["code102"] == ""  # never derived from the other format
    level_2 = {row["code"] for row in agencies_qd20(DIRECTORY, "2", AT)}
    assert {"H01.151", "000.00.32.H53", "000.00.05.G01"} <= level_2
    assert not {"000.00.00.G22", "000.21.32.H53", "H53.318.02"} & level_2
    assert "H53.318.02" in {row["code"] for row in agencies_qd20(DIRECTORY, "3", AT)}


def test_synchronize_units_names_the_hub_of_an_agency_behind_one() -> None:
    units = _by_id(synchronize_units(DIRECTORY, AT))
    assert units["H53.318.02"]["centerCode"] == "00.53.W00"
    assert units["H01.151"]["centerCode"] == ""


# The same world after a reform (docs/directory.md): H41 gains its Decision 20/2020 code and
# keeps a former code, and one of its communes closed into it.
H41, H41_COMMUNE, FORMER = "000.00.00.H41", "000.07.12.H41", "000.00.00.H40"
REFORMED_CHANGES: dict[str, dict[str, Any]] = {
    H41: {"paired_code": "H41", "former_codes": [FORMER]},
    H41_COMMUNE: {
        "status": "closed",
        "closes": "2025-07-01",
        "successors": [{"organ_code": H41, "share": "full"}],
    },
}


def _reformed(revision: int, more: dict[str, dict[str, Any]] | None = None) -> Directory:
    raw = DIRECTORY.file.model_dump(mode="json", by_alias=True, exclude_unset=True)
    raw["version"], raw["revision"] = 2, revision
    changes = REFORMED_CHANGES | (more or {})
    raw["agencies"] = [
        agency | changes.get(str(agency["organ_code"]), {}) for agency in raw["agencies"]
    ]
    return Directory(DirectoryFile.model_validate(raw))


def test_the_lists_name_former_codes_and_the_paired_qcvn_102_code_and_leave_out_closed_ones() -> (
    None
):
    reformed = _reformed(3)
    listed = _by_id(agencies(reformed, AT))
    assert listed[H41]["oldCode"] == FORMER
    assert listed["000.00.32.H53"]["oldCode"] == ""
    assert H41_COMMUNE not in listed

    qd20 = _by_id(agencies_qd20(reformed, None, AT))
    # The Decision 20/2020 list names H41 by its paired Decision 20 code, 102 code beside.
    assert (qd20[H41]["code"], qd20[H41]["code102"], qd20[H41]["oldCode"]) == ("H41", H41, FORMER)
    assert H41_COMMUNE not in qd20
    assert "H41" in {row["code"] for row in agencies_qd20(reformed, "1", AT)}


def test_synchronize_units_marks_a_closed_agency_deleted_at_the_directory_revision() -> None:
    units = _by_id(synchronize_units(_reformed(3), AT))
    closed = units[H41_COMMUNE]
    assert (closed["deleted"], closed["version"], closed["modifyDate"]) == (True, 3, "2025-07-01")
    assert (units[H41]["deleted"], units[H41]["version"]) == (False, 3)
    # A directory file without a revision is the first version.
    assert {unit["version"] for unit in synchronize_units(DIRECTORY, AT)} == {1}


# A commune that opens later (effective on 2025-08-01) beside the one that closes on 2025-07-01.
OPENING = "001.21.32.H53"
CLOSES, OPENS = date(2025, 7, 1), date(2025, 8, 1)


def _listed_everywhere(directory: Directory, at: datetime) -> dict[str, set[str]]:
    """What each list says is in service at ``at``, by organ code."""
    units = synchronize_units(directory, at)
    return {
        "getAgenciesList": {str(row["id"]) for row in agencies(directory, at)},
        "getAgenciesListQD20": {str(row["id"]) for row in agencies_qd20(directory, None, at)},
        "getSynchronizeUnit": {str(row["id"]) for row in units if not row["deleted"]},
    }


@pytest.mark.parametrize(
    ("day", "offset", "commune_in_service", "opening_in_service"),
    [
        (CLOSES, -timedelta(microseconds=1), True, False),  # its status says closed already
        (CLOSES, timedelta(0), False, False),  # its closing day has come
        (OPENS, -timedelta(microseconds=1), False, False),
        (OPENS, timedelta(0), False, True),  # in effect from its effective day
    ],
)
def test_an_agency_is_listed_in_service_by_its_dates_at_the_instant_asked(
    day: date, offset: timedelta, commune_in_service: bool, opening_in_service: bool
) -> None:
    directory = _reformed(3, {OPENING: {"effective": OPENS.isoformat()}})
    at = directory.timeline.instant(day) + offset  # midnight in the directory's zone

    for answer, listed in _listed_everywhere(directory, at).items():
        assert (H41_COMMUNE in listed) is commune_in_service, answer
        assert (OPENING in listed) is opening_in_service, answer
    units = _by_id(synchronize_units(directory, at))
    assert units[H41_COMMUNE]["modifyDate"] == CLOSES.isoformat()  # the day, whatever the instant
    assert units[OPENING]["version"] == 3


@pytest.mark.parametrize("day", [date(2025, 6, 30), CLOSES, date(2025, 7, 31), OPENS])
def test_the_lists_say_in_service_exactly_what_the_router_delivers_to(day: date) -> None:
    directory = _reformed(3, {OPENING: {"effective": OPENS.isoformat()}})
    at = directory.timeline.instant(day)
    delivered = {
        str(agency.organ_code)
        for agency in directory.agencies
        if isinstance(address(directory, str(agency.organ_code), at, timedelta(days=30)), Deliver)
    }
    for answer, listed in _listed_everywhere(directory, at).items():
        assert listed == delivered, answer
