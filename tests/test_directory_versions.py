"""File versions 1 and 2 side by side, and files cut short."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from backbone.directory import (
    CodeRole,
    DirectoryFile,
    Format,
    State,
    dump_directory,
    format_of,
    generate_directory,
    load_directory,
    parse_directory,
)
from backbone.errors import DirectoryError
from backbone.organ import OrganCode
from tests.test_directory_loading import SAMPLE, SAMPLE_YAML

SOME_DAY = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def small() -> DirectoryFile:
    """The first 40 agencies of the synthetic country (version 2, with paired codes)."""
    country = generate_directory(seed=3)
    agencies = tuple(a for a in country.agencies if a.organ_code.levels[0] in ("G22", "H01"))
    hubs = tuple(h for h in country.hubs if str(h.id) == "00.01.W00")
    return country.model_copy(update={"agencies": agencies[:40], "hubs": hubs})


def test_a_version_1_file_keeps_its_meaning(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(SAMPLE_YAML, "utf-8")
    directory = load_directory(path)
    assert directory.file.version == 1
    commune = directory.agency("000.21.32.H53")
    assert commune.active is False  # listed, not in service: the router refuses it as before
    assert directory.resolve("000.21.32.H53", SOME_DAY).state is State.CLOSED
    assert all(agency.active for agency in directory if str(agency.organ_code) != "000.21.32.H53")


def test_a_version_1_file_with_version_2_fields_is_told_to_say_version_2() -> None:
    data = yaml.safe_load(SAMPLE_YAML)
    data["agencies"][1]["paired_code"] = "H53"
    data["hubs"][0]["status"] = "closed"
    with pytest.raises(DirectoryError) as caught:
        parse_directory(yaml.safe_dump(data), format="yaml")
    assert "hubs[0] (00.53.W00).status: needs version: 2 (this file says version: 1)" in (
        caught.value.message
    )
    assert (
        "agencies[1] (000.00.00.H53).paired_code: needs version: 2 (this file says version: 1)"
        in caught.value.message
    )


@pytest.mark.parametrize(
    ("paired", "expected"),
    [
        ("H53..1", "organ code 'H53..1': level 2 is ''; expected capital letters and digits"),
        ("000.00.32", "organ code '000.00.32' has 3 part(s); expected 4 dot-separated parts"),
        (
            "H53." + "1" * 40,
            "organ code 'H53.111111111111111111111111111111111111'…: 44 characters; a Decision "
            "20/2020 code has at most 35",
        ),
        (53, "an organ code must be a string"),
    ],
)
def test_a_malformed_paired_code_is_refused_in_the_parsers_words_from_json_and_yaml(
    paired: object, expected: str
) -> None:
    # From JSON a paired code is checked by a pattern in pydantic's Rust core, not parsed:
    # its error still names the entry and says what is wrong, as the parser does from YAML.
    data = yaml.safe_load(SAMPLE_YAML)
    data["version"] = 2
    data["agencies"][1]["paired_code"] = paired
    messages = []
    files: tuple[tuple[Format, str], ...] = (
        ("json", json.dumps(data)),
        ("yaml", yaml.safe_dump(data)),
    )
    for format, text in files:
        with pytest.raises(DirectoryError) as caught:
            parse_directory(text, format=format)
        messages.append(caught.value.message)
    assert messages[0] == messages[1]
    assert f"agencies[1] (000.00.00.H53).paired_code: {expected}" in messages[0]


def test_a_paired_code_kept_as_text_is_the_code_it_names_and_found_by_either_form() -> None:
    directory = parse_directory(
        json.dumps(
            {
                "version": 2,
                "agencies": [
                    {
                        "organ_code": "000.00.00.H53",
                        "paired_code": "H53",
                        "name": "UBND tỉnh",
                        "connection": "direct",
                        "broker_account": "agency-h53",
                    }
                ],
            }
        ),
        format="json",
    )
    agency = directory.agency("000.00.00.H53")
    assert agency.paired_code == OrganCode.parse("H53")
    for code in ("H53", OrganCode.parse("H53")):
        found = directory.lookup(code, SOME_DAY)
        assert found is not None
        assert (found.agency, found.role) == (agency, CodeRole.PAIRED)
    assert directory.lookup("H53.", SOME_DAY) is None  # malformed: no code's text


def test_a_version_2_file_says_status_closed_instead_of_active_false() -> None:
    data = {**SAMPLE, "version": 2}
    with pytest.raises(DirectoryError) as caught:
        parse_directory(yaml.safe_dump(data), format="yaml")
    assert caught.value.message.endswith(
        "agencies[4] (000.21.32.H53).active: version 2 has no 'active'; write status: closed "
        "with the date it closes"
    )


def test_the_synthetic_country_is_the_same_in_both_versions_but_for_the_paired_codes() -> None:
    old, new = generate_directory(seed=5, version=1), generate_directory(seed=5)
    assert (old.version, new.version) == (1, 2)
    assert [a.organ_code for a in old.agencies] == [a.organ_code for a in new.agencies]
    paired = [a for a in new.agencies if a.paired_code is not None]
    assert all(a.paired_code is None for a in old.agencies)
    assert str(paired[0].paired_code) == "H01"
    assert 9_000 < len(paired) < 12_000  # provinces and communes


@pytest.mark.parametrize("name", ["directory.json", "directory.yaml"])
def test_a_dumped_version_2_file_round_trips_with_its_agency_count(
    small: DirectoryFile, tmp_path: Path, name: str
) -> None:
    dump_directory(small, tmp_path / name)
    loaded = load_directory(tmp_path / name)
    assert loaded.file.agency_count == len(small.agencies) == 40
    found = loaded.resolve("H01", SOME_DAY)
    assert (str(found.agency.organ_code), found.role) == ("000.00.00.H01", CodeRole.PAIRED)


def cut_message(small: DirectoryFile, tmp_path: Path, name: str, at: bytes | None) -> str:
    """The error for ``small`` written to ``name`` and cut just after the last ``at``
    (in the middle when None)."""
    path = tmp_path / name
    dump_directory(small, path)
    data = path.read_bytes()
    cut = len(data) // 2 if at is None else data.rfind(at) + 1
    with pytest.raises(DirectoryError) as caught:
        parse_directory(data[:cut], format=format_of(path), source=name)
    return caught.value.message


def test_a_json_file_cut_short_says_so(small: DirectoryFile, tmp_path: Path) -> None:
    message = cut_message(small, tmp_path, "cut.json", None)
    assert message.startswith("cut.json: not valid JSON (EOF while parsing")
    assert message.endswith("the file ends in the middle of its data, so it was cut short")


def test_a_yaml_file_cut_between_two_entries_is_refused_by_its_count(
    small: DirectoryFile, tmp_path: Path
) -> None:
    assert cut_message(small, tmp_path, "c.yaml", b"\n- organ_code") == (
        "c.yaml: agency_count: the file says 40 agencies but lists 39; it may be cut short"
    )


def test_a_yaml_file_cut_inside_an_entry_names_the_entry(
    small: DirectoryFile, tmp_path: Path
) -> None:
    last = small.agencies[-1].organ_code
    assert cut_message(small, tmp_path, "c.yaml", b"\n  connection:") == (
        f"c.yaml: agencies[39] ({last}).connection: Field required"
    )


def test_the_version_2_example_in_the_docs_loads_with_its_merge_and_split() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "directory.md").read_text("utf-8")
    example = next(
        block
        for block in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL)
        if block.startswith("version: 2")
    )
    directory = parse_directory(example, format="yaml", source="docs/directory.md")
    after = datetime(2025, 7, 1, tzinfo=UTC)
    assert [str(h.agency.organ_code) for h in directory.heirs("000.00.32.H53", after)] == [
        "000.00.00.H53"
    ]
    assert [str(h.agency.organ_code) for h in directory.heirs("000.21.32.H53", after)] == [
        "H53.101",
        "H53.102",
    ]
    assert directory.resolve("000.22.32.H53", after).role is CodeRole.FORMER
