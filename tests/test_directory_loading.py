"""Loading directory files (YAML and JSON) and the errors a bad file gets."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from backbone.directory import Connection, Directory, load_directory, parse_directory
from backbone.errors import DirectoryError, OrganCodeError, Reason
from backbone.organ import OrganCode

SAMPLE_YAML = """\
version: 1
hubs:
  - id: "00.53.W00"
    name: Trục LGSP tỉnh Tây Ninh
    serves: ["000.00.00.H53"]
    broker_account: hub-tay-ninh
agencies:
  - organ_code: "000.00.00.G22"
    name: Văn phòng Chính phủ
    connection: direct
    broker_account: vpcp
    certificate: certs/vpcp.pem
  - organ_code: "000.00.00.H53"
    name: UBND tỉnh Tây Ninh
    connection: hub
    hub: "00.53.W00"
  - organ_code: "000.00.04.H53"
    name: Sở Tài chính tỉnh Tây Ninh
    connection: direct
    broker_account: stc-tay-ninh
  - organ_code: "000.00.32.H53"
    name: UBND huyện Tân Châu
    connection: hub
    hub: "00.53.W00"
  - organ_code: "000.21.32.H53"
    name: UBND xã Tân Hòa
    connection: hub
    hub: "00.53.W00"
    active: false
"""
SAMPLE: dict[str, Any] = yaml.safe_load(SAMPLE_YAML)


def write(tmp_path: Path, data: dict[str, Any], suffix: str) -> Path:
    path = tmp_path / f"directory{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    else:
        path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def changed(edit: str, value: Any) -> dict[str, Any]:
    """SAMPLE with one edit: ``agencies.2.hub`` sets, ``value=DELETE`` removes."""
    data = copy.deepcopy(SAMPLE)
    *path, last = edit.split(".")
    node: Any = data
    for key in path:
        node = node[int(key)] if key.isdigit() else node[key]
    key_or_index: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key_or_index]
    else:
        node[key_or_index] = value
    return data


DELETE = object()


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_yaml_and_json_files_load_to_the_same_directory(tmp_path: Path, suffix: str) -> None:
    directory = load_directory(write(tmp_path, SAMPLE, suffix))
    assert len(directory) == 5
    assert [str(agency.organ_code) for agency in directory][:2] == [
        "000.00.00.G22",
        "000.00.00.H53",
    ]
    commune = directory.agency("000.21.32.H53")
    assert commune.connection is Connection.HUB
    assert commune.active is False
    assert directory.agency("000.00.00.G22").active is True
    assert directory.hub("00.53.W00").broker_account == "hub-tay-ninh"
    assert directory.base_dir == tmp_path
    assert directory.source == str(tmp_path / f"directory{suffix}")


def test_the_sample_text_in_its_own_yaml_layout_loads(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(SAMPLE_YAML, "utf-8")
    assert load_directory(path).agency("000.00.04.H53").broker_account == "stc-tay-ninh"


def test_a_file_without_tiers_uses_the_four_tier_default(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, SAMPLE, ".yaml"))
    assert directory.tier_of("000.21.32.H53").number == 3
    assert directory.tiers.profile_name() == "four-tier"


def test_a_file_saying_tiers_two_level_puts_a_commune_in_tier_2(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, changed("tiers", "two-level"), ".yaml"))
    assert directory.tier_of("000.21.32.H53").number == 2
    assert directory.tier_of("000.00.00.H53").number == 1


def test_a_file_can_give_its_tiers_as_an_explicit_list(tmp_path: Path) -> None:
    tiers = [
        {"number": 1, "name": "provincial", "levels": [1, 2]},
        {"number": 2, "name": "commune", "levels": [3, 4]},
    ]
    directory = load_directory(write(tmp_path, changed("tiers", tiers), ".json"))
    assert directory.tier_of("000.00.32.H53").name == "provincial"
    assert directory.tier_of("000.21.32.H53").name == "commune"


def test_tiers_given_to_the_loader_override_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, changed("tiers", "four-tier"), ".yaml")
    assert load_directory(path, tiers="two-level").tier_of("000.21.32.H53").number == 2


def test_an_invalid_tier_list_in_the_file_is_reported_under_tiers(tmp_path: Path) -> None:
    tiers = [{"number": 1, "name": "all", "levels": [1, 2, 3]}]
    with pytest.raises(DirectoryError) as caught:
        load_directory(write(tmp_path, changed("tiers", tiers), ".yaml"))
    assert "tiers: organ-code level 4 is in no tier" in caught.value.message


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(
    ("edit", "value", "message"),
    [
        (
            "agencies.3.organ_code",
            "28.22.H17",
            "agencies[3] (28.22.H17).organ_code: organ code '28.22.H17' has 3 part(s)",
        ),
        (
            "agencies.1.organ_code",
            "000.00.00.h53",
            "agencies[1] (000.00.00.h53).organ_code: organ code '000.00.00.h53': level 1 is "
            "'h53'; expected a capital letter and two digits",
        ),
        (
            "agencies.4.organ_code",
            "000.00.00.G22",
            "agencies[4] (000.00.00.G22).organ_code: duplicate organ code; first listed at "
            "agencies[0]",
        ),
        (
            "agencies.3.hub",
            "00.99.W00",
            "agencies[3] (000.00.32.H53).hub: hub 00.99.W00 is not listed under hubs",
        ),
        (
            "agencies.3.hub",
            DELETE,
            "agencies[3] (000.00.32.H53).hub: required when connection is 'hub'",
        ),
        (
            "agencies.3.organ_code",
            "000.00.32.H54",
            "agencies[3] (000.00.32.H54).organ_code: outside every subtree hub 00.53.W00 "
            "serves (000.00.00.H53)",
        ),
        (
            "agencies.2.broker_account",
            DELETE,
            "agencies[2] (000.00.04.H53).broker_account: required when connection is 'direct'",
        ),
        (
            "agencies.2.hub",
            "00.53.W00",
            "agencies[2] (000.00.04.H53).hub: set to 00.53.W00 but connection is 'direct'",
        ),
        (
            "agencies.3.broker_account",
            "huyen-tan-chau",
            "agencies[3] (000.00.32.H53).broker_account: set to 'huyen-tan-chau' but "
            "connection is 'hub'",
        ),
        (
            "agencies.2.broker_account",
            "vpcp",
            "agencies[2] (000.00.04.H53).broker_account: 'vpcp' is already the account of "
            "agencies[0] (000.00.00.G22)",
        ),
        (
            "agencies.0.broker_account",
            "hub-tay-ninh",
            "agencies[0] (000.00.00.G22).broker_account: 'hub-tay-ninh' is already the account "
            "of hubs[0] (00.53.W00)",
        ),
        (
            "agencies.1.connection",
            "lgsp",
            "agencies[1] (000.00.00.H53).connection: Input should be 'direct' or 'hub'",
        ),
        (
            "agencies.1.name",
            DELETE,
            "agencies[1] (000.00.00.H53).name: Field required",
        ),
        (
            "agencies.1.brokr_account",
            "x",
            "agencies[1] (000.00.00.H53).brokr_account: Extra inputs are not permitted",
        ),
        (
            "hubs.0.id",
            "lgsp tay ninh",
            "hubs[0] (lgsp tay ninh).id: system id 'lgsp tay ninh'",
        ),
        (
            "hubs.0.id",
            "000.00.00.H53",
            "hubs[0] (000.00.00.H53).id: 000.00.00.H53 is an organ code",
        ),
        (
            "hubs.0.serves",
            ["53"],
            "hubs[0] (00.53.W00).serves[0]: organ code '53' has 1 part(s)",
        ),
        ("hubs.0.serves", [], "hubs[0] (00.53.W00).serves: Tuple should have at least 1 item"),
        ("version", 3, "version: Input should be 1 or 2"),
        ("agencies", DELETE, "agencies: Field required"),
        ("tiers", "three-tier", "tiers: unknown tier profile 'three-tier'"),
    ],
)
def test_each_invalid_entry_is_named_with_its_field(
    tmp_path: Path, suffix: str, edit: str, value: Any, message: str
) -> None:
    path = write(tmp_path, changed(edit, value), suffix)
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert message in caught.value.message
    assert caught.value.reason is Reason.DIRECTORY_INVALID


def test_a_duplicate_hub_id_is_rejected(tmp_path: Path) -> None:
    data = copy.deepcopy(SAMPLE)
    data["hubs"].append({**SAMPLE["hubs"][0], "broker_account": "other"})
    with pytest.raises(DirectoryError) as caught:
        load_directory(write(tmp_path, data, ".yaml"))
    assert "hubs[1] (00.53.W00).id: duplicate hub id; first listed at hubs[0]" in str(caught.value)


def test_every_problem_in_a_file_is_listed_at_once(tmp_path: Path) -> None:
    data = changed("agencies.2.broker_account", DELETE)
    data["agencies"][3]["hub"] = "00.99.W00"
    with pytest.raises(DirectoryError) as caught:
        load_directory(write(tmp_path, data, ".json"))
    lines = caught.value.message.splitlines()
    assert lines[0].endswith(": 2 problems:")
    assert "agencies[2] (000.00.04.H53).broker_account" in lines[1]
    assert "agencies[3] (000.00.32.H53).hub" in lines[2]


def test_a_long_list_of_problems_is_cut_short(tmp_path: Path) -> None:
    data = copy.deepcopy(SAMPLE)
    data["agencies"] = [
        {"organ_code": f"000.00.{n:02d}.H53", "name": "x", "connection": "direct"}
        for n in range(1, 31)
    ]
    with pytest.raises(DirectoryError) as caught:
        load_directory(write(tmp_path, data, ".json"))
    lines = caught.value.message.splitlines()
    assert lines[0].endswith(": 30 problems:")
    assert len(lines) == 22
    assert lines[-1] == "  … and 10 more"


def test_malformed_json_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "directory.json"
    path.write_text('{"version": 1,\n "agencies": [}', "utf-8")
    with pytest.raises(DirectoryError, match=r"not valid JSON \(.*line 2"):
        load_directory(path)


def test_malformed_yaml_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text("version: 1\nagencies: [\n  {organ_code: x\n", "utf-8")
    with pytest.raises(
        DirectoryError,
        match="not valid YAML at line 4, column 1: while parsing a flow mapping did not find "
        "expected ',' or '}'",
    ):
        load_directory(path)


def test_a_yaml_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text("- just\n- a list\n", "utf-8")
    with pytest.raises(DirectoryError, match="Input should be a valid dictionary"):
        load_directory(path)


def test_an_unknown_extension_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match=r"unknown directory format '\.toml'"):
        load_directory(tmp_path / "directory.toml")


def test_a_missing_file_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match="cannot be read: No such file"):
        load_directory(tmp_path / "absent.json")


def test_parse_directory_loads_from_memory() -> None:
    directory = parse_directory(json.dumps(SAMPLE), format="json")
    assert directory.agency("000.00.00.G22").name == "Văn phòng Chính phủ"


def test_certificates_are_kept_as_text_and_read_only_when_asked(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nnot parsed here\n-----END CERTIFICATE-----\n"
    data = changed("agencies.2.certificate", pem)
    directory = load_directory(write(tmp_path, data, ".yaml"))  # certs/vpcp.pem is absent
    vpcp = directory.agency("000.00.00.G22")
    assert vpcp.certificate == "certs/vpcp.pem"
    assert directory.certificate_pem(directory.agency("000.00.04.H53")) == pem.encode()
    assert directory.certificate_pem(directory.agency("000.00.00.H53")) is None
    with pytest.raises(DirectoryError, match=r"000\.00\.00\.G22: certificate file .* cannot"):
        directory.certificate_pem(vpcp)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "vpcp.pem").write_bytes(b"PEM FROM FILE")
    assert directory.certificate_pem(vpcp) == b"PEM FROM FILE"


def test_a_directory_from_entries_validates_like_a_file() -> None:
    agencies = [
        *SAMPLE["agencies"],
        {"organ_code": "28.22.H17", "name": "x", "connection": "direct"},
    ]
    with pytest.raises(DirectoryError) as caught:
        Directory.from_entries(agencies, SAMPLE["hubs"])
    assert "agencies[5] (28.22.H17).organ_code: organ code '28.22.H17' has 3 part(s)" in str(
        caught.value
    )


def test_lookups_by_a_malformed_code_raise_the_organ_code_error(tmp_path: Path) -> None:
    directory = load_directory(write(tmp_path, SAMPLE, ".yaml"))
    with pytest.raises(OrganCodeError):
        directory.agency("28.22.H17")
    assert directory.get("28.22.H17") is None
    assert OrganCode.parse("000.00.32.H53") in directory
    assert "28.22.H17" not in directory
