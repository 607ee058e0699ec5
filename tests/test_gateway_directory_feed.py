"""The gateway's agency lists (getAgenciesList, getAgenciesListQD20, getSynchronizeUnit)
answered from the directory, with agencies in both code formats (testkit's world)."""

from __future__ import annotations

from adapters.gateway.directory_feed import agencies, agencies_qd20, synchronize_units
from testkit import build_directory

DIRECTORY = build_directory()


def _by_id(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["id"]: row for row in rows}


def test_every_active_agency_is_listed_with_its_parent_in_its_own_format() -> None:
    listed = _by_id(agencies(DIRECTORY))
    assert set(listed) == {str(agency.organ_code) for agency in DIRECTORY.agencies}
    assert listed["000.21.32.H53"]["pid"] == "000.00.32.H53"
    assert listed["H53.318.02"]["pid"] == "H53.318"
    assert listed["000.00.00.G22"]["pid"] == ""


def test_the_qd20_list_gives_code102_only_for_a_qcvn_102_code_and_filters_by_level() -> None:
    listed = _by_id(agencies_qd20(DIRECTORY, None))
    assert listed["000.00.32.H53"]["code102"] == "000.00.32.H53"
    assert listed["H01.151"]["code"] == "H01.151"
    assert listed["H01.151"]["code102"] == ""  # never derived from the other format
    level_2 = {row["code"] for row in agencies_qd20(DIRECTORY, "2")}
    assert {"H01.151", "000.00.32.H53", "000.00.05.G01"} <= level_2
    assert not {"000.00.00.G22", "000.21.32.H53", "H53.318.02"} & level_2
    assert "H53.318.02" in {row["code"] for row in agencies_qd20(DIRECTORY, "3")}


def test_synchronize_units_names_the_hub_of_an_agency_behind_one() -> None:
    units = _by_id(synchronize_units(DIRECTORY))
    assert units["H53.318.02"]["centerCode"] == "00.53.W00"
    assert units["H01.151"]["centerCode"] == ""
