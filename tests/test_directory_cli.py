"""``backbone directory``: check, show, subtree, generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backbone.directory import load_directory
from backbone.directory.cli import app

SAMPLE = """\
version: 1
tiers: four-tier
hubs:
  - {id: "00.53.W00", name: Trục LGSP tỉnh Tây Ninh, serves: ["000.00.00.H53"],
     broker_account: hub-tay-ninh}
agencies:
  - {organ_code: "000.00.00.G22", name: Văn phòng Chính phủ, connection: direct,
     broker_account: vpcp}
  - {organ_code: "000.00.00.H53", name: UBND tỉnh Tây Ninh, connection: hub, hub: "00.53.W00"}
  - {organ_code: "000.00.32.H53", name: UBND huyện Tân Châu, connection: hub, hub: "00.53.W00"}
  - {organ_code: "000.21.32.H53", name: UBND xã Tân Hòa, connection: hub, hub: "00.53.W00",
     active: false}
"""

runner = CliRunner()


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(SAMPLE, "utf-8")
    return path


def test_check_prints_counts_per_tier_hubs_and_connections(sample: Path) -> None:
    result = runner.invoke(app, ["check", str(sample)])
    assert result.exit_code == 0, result.output
    assert f"{sample}: valid, version 1, 4 agencies, tiers four-tier" in result.stdout
    assert "tier 1 central-provincial: 2" in result.stdout
    assert "tier 2 department-district: 1" in result.stdout
    assert "tier 3 commune: 1" in result.stdout
    assert "tier 4 unit: 0" in result.stdout
    assert "hubs: 1" in result.stdout
    assert "direct agencies: 1" in result.stdout
    assert "agencies through a hub: 3" in result.stdout
    assert "inactive: 1" in result.stdout


def test_check_with_another_tier_profile_regroups_the_counts(sample: Path) -> None:
    result = runner.invoke(app, ["check", str(sample), "--tiers", "two-level"])
    assert result.exit_code == 0, result.output
    assert "tier 2 subordinate: 2" in result.stdout


def test_check_exits_1_with_the_precise_error(sample: Path) -> None:
    sample.write_text(SAMPLE.replace('serves: ["000.00.00.H53"]', 'serves: ["000.00.00.H5"]'))
    result = runner.invoke(app, ["check", str(sample)])
    assert result.exit_code == 1
    assert "hubs[0] (00.53.W00).serves[0]: organ code '000.00.00.H5'" in result.stderr
    assert result.stdout == ""


def test_show_prints_the_agency_its_tier_routing_and_serving_system(sample: Path) -> None:
    result = runner.invoke(app, ["show", str(sample), "000.21.32.H53"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["agency"]["name"] == "UBND xã Tân Hòa"
    assert shown["agency"]["active"] is False
    assert shown["tier"] == {"number": 3, "name": "commune"}
    assert shown["routing_key"] == "H53.32.21.000"
    assert shown["subtree_pattern"] == "H53.32.21.#"
    assert shown["parents"] == [
        {"organ_code": "000.00.32.H53", "name": "UBND huyện Tân Châu"},
        {"organ_code": "000.00.00.H53", "name": "UBND tỉnh Tây Ninh"},
    ]
    assert shown["serving_system"] == {
        "kind": "hub",
        "id": "00.53.W00",
        "name": "Trục LGSP tỉnh Tây Ninh",
        "broker_account": "hub-tay-ninh",
    }


def test_show_a_direct_agency_serves_itself(sample: Path) -> None:
    result = runner.invoke(app, ["show", str(sample), "000.00.00.G22"])
    shown = json.loads(result.stdout)
    assert shown["parents"] == []
    assert shown["serving_system"]["kind"] == "agency"
    assert shown["serving_system"]["broker_account"] == "vpcp"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("000.00.31.H53", "organ code 000.00.31.H53 is not in the directory"),
        ("28.22.H17", "organ code '28.22.H17' has 3 part(s)"),
    ],
)
def test_show_an_unknown_or_malformed_code_exits_1(sample: Path, code: str, message: str) -> None:
    result = runner.invoke(app, ["show", str(sample), code])
    assert result.exit_code == 1
    assert message in result.stderr


def test_subtree_lists_code_tier_and_name(sample: Path) -> None:
    result = runner.invoke(app, ["subtree", str(sample), "000.00.32.H53"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "000.00.32.H53\t2\tUBND huyện Tân Châu",
        "000.21.32.H53\t3\tUBND xã Tân Hòa",
    ]


def test_generate_writes_a_loadable_directory_deterministically(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for out in (first, second):
        result = runner.invoke(app, ["generate", str(out), "--seed", "3"])
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    assert len(load_directory(first)) > 11_000


def test_generate_writes_yaml_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "country.yml"
    result = runner.invoke(app, ["generate", str(out), "--format", "yaml"])
    assert result.exit_code == 0, result.output
    assert out.read_text("utf-8").startswith("version: 2\nagency_count: ")


def test_generate_rejects_an_unknown_extension(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", str(tmp_path / "country.txt")])
    assert result.exit_code == 1
    assert "unknown directory format '.txt'" in result.stderr
