"""The gateway's agency lists (getAgenciesList, getAgenciesListQD20, getSynchronizeUnit)
answered from the directory, with agencies in both code formats (testkit's world)."""

from __future__ import annotations

from typing import Any

from adapters.gateway.directory_feed import agencies, agencies_qd20, synchronize_units
from backbone.directory import Directory, DirectoryFile
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


def _reformed(revision: int) -> Directory:
    raw = DIRECTORY.file.model_dump(mode="json", by_alias=True, exclude_unset=True)
    raw["version"], raw["revision"] = 2, revision
    raw["agencies"] = [
        agency | REFORMED_CHANGES.get(str(agency["organ_code"]), {}) for agency in raw["agencies"]
    ]
    return Directory(DirectoryFile.model_validate(raw))


def test_the_lists_name_former_codes_and_the_paired_qcvn_102_code_and_leave_out_closed_ones() -> (
    None
):
    reformed = _reformed(3)
    listed = _by_id(agencies(reformed))
    assert listed[H41]["oldCode"] == FORMER
    assert listed["000.00.32.H53"]["oldCode"] == ""
    assert H41_COMMUNE not in listed

    qd20 = _by_id(agencies_qd20(reformed, None))
    # The Decision 20/2020 list names H41 by its paired Decision 20 code, 102 code beside.
    assert (qd20[H41]["code"], qd20[H41]["code102"], qd20[H41]["oldCode"]) == ("H41", H41, FORMER)
    assert H41_COMMUNE not in qd20
    assert "H41" in {row["code"] for row in agencies_qd20(reformed, "1")}


def test_synchronize_units_marks_a_closed_agency_deleted_at_the_directory_revision() -> None:
    units = _by_id(synchronize_units(_reformed(3)))
    closed = units[H41_COMMUNE]
    assert (closed["deleted"], closed["version"], closed["modifyDate"]) == (True, 3, "2025-07-01")
    assert (units[H41]["deleted"], units[H41]["version"]) == (False, 3)
    # A directory file without a revision is the first version.
    assert {unit["version"] for unit in synchronize_units(DIRECTORY)} == {1}
