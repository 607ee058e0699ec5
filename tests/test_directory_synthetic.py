"""The synthetic country-size directory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from backbone.directory import (
    Connection,
    Directory,
    DirectoryFile,
    dump_directory,
    generate_directory,
    load_directory,
)


@pytest.fixture(scope="module")
def generated() -> DirectoryFile:
    return generate_directory(seed=7)


@pytest.fixture(scope="module")
def directory(generated: DirectoryFile) -> Directory:
    return Directory(generated)


def test_it_validates_and_has_about_twelve_thousand_agencies(directory: Directory) -> None:
    assert 11_000 <= len(directory) <= 13_000


def test_it_spans_the_four_tiers_with_communes_the_largest(directory: Directory) -> None:
    per_tier = Counter(directory.tier_of(agency.organ_code).number for agency in directory)
    assert per_tier[1] == 31 + 63
    assert 1_000 <= per_tier[2] <= 2_500
    assert per_tier[3] >= 9_000
    assert 50 <= per_tier[4] <= 500


def test_every_province_has_a_hub_serving_its_whole_subtree(directory: Directory) -> None:
    for number in range(1, 64):
        province = f"000.00.00.H{number:02d}"
        hub = directory.hub(f"00.{number:02d}.W00")
        assert [str(root) for root in hub.serves] == [province]
        subtree = directory.subtree(province)
        assert len(subtree) > 100
        assert {directory.serving_system(agency.organ_code) for agency in subtree} == {hub}


def test_ministries_connect_directly_and_some_run_a_hub_for_their_units(
    directory: Directory,
) -> None:
    ministries = [directory.agency(f"000.00.00.G{number:02d}") for number in range(1, 32)]
    assert all(ministry.connection is Connection.DIRECT for ministry in ministries)
    ministry_hubs = [hub for hub in directory.hubs if hub.system_id.startswith("10.")]
    assert 1 <= len(ministry_hubs) <= 20
    for hub in ministry_hubs:
        (root,) = hub.serves
        units = directory.subtree(root)[1:]
        assert units
        assert all(unit.hub == hub.id for unit in units)
    office = directory.agency("000.00.00.G22")
    assert office.name == "Văn phòng Chính phủ"
    assert all(
        agency.connection is Connection.DIRECT for agency in directory.subtree(office.organ_code)
    )


def test_names_are_vietnamese_and_provinces_have_real_looking_codes(directory: Directory) -> None:
    assert directory.agency("000.00.00.H29").name == "UBND thành phố Hồ Chí Minh"
    assert directory.agency("000.00.00.H41").name == "UBND tỉnh Nghệ An"
    assert directory.agency("000.00.00.H53").name == "UBND tỉnh Tây Ninh"
    assert directory.agency("000.00.01.H53").name.endswith(" tỉnh Tây Ninh")
    districts = [
        a.name for a in directory.children("000.00.00.H53") if a.organ_code.levels[1] >= "30"
    ]
    assert districts
    assert all(name.startswith("UBND ") for name in districts)
    communes = directory.children(directory.children("000.00.00.H53")[-1].organ_code)
    assert communes
    assert all(c.name.startswith(("UBND xã ", "UBND phường ", "UBND thị trấn ")) for c in communes)


def test_the_same_seed_gives_the_same_directory_and_another_seed_another(
    generated: DirectoryFile,
) -> None:
    assert generate_directory(seed=7) == generated
    assert generate_directory(seed=8) != generated


def test_no_certificates_unless_a_certificate_folder_is_given(generated: DirectoryFile) -> None:
    assert all(agency.certificate is None for agency in generated.agencies)
    with_certificates = generate_directory(seed=7, certificate_dir="certs")
    assert with_certificates.agencies[0].certificate == "certs/000.00.00.G01.pem"
    assert with_certificates.hubs[0].certificate == f"certs/{with_certificates.hubs[0].id}.pem"


@pytest.mark.parametrize("name", ["directory.json", "directory.yaml"])
def test_it_round_trips_through_a_file(generated: DirectoryFile, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    dump_directory(generated, path)
    assert load_directory(path).file == generated
