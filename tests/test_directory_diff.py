"""What changes between two directory versions (``backbone directory diff``)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from backbone.directory import Directory, DirectoryBuilder, dump_directory
from backbone.directory.cli import app
from backbone.directory.diff import Change, ChangeKind, diff_directories
from tests.test_directory_history import closed, full, partial

HUB = "00.53.W00"
PROVINCE = "000.00.00.H53"
DISTRICT = "000.00.32.H53"
COMMUNE = "000.21.32.H53"
REFORM = "2025-07-01"


def before() -> Directory:
    """Tây Ninh before the reform (version 1, as today's files are)."""
    return (
        DirectoryBuilder()
        .hub(HUB, PROVINCE)
        .via_hub(PROVINCE, HUB, name="UBND tỉnh Tây Ninh")
        .via_hub(DISTRICT, HUB, name="UBND huyện Tân Châu")
        .via_hub(COMMUNE, HUB, name="UBND xã Tân Hòa")
        .via_hub("000.22.32.H53", HUB, name="UBND xã Tân Hưng")
        .direct("000.00.04.H53", name="Sở Tài chính")
        .direct("000.00.05.H53", name="Sở Nội vụ", active=False)
        .build()
    )


def after(**changes: object) -> DirectoryBuilder:
    """The reform: the district merged into the province, commune Tân Hòa split, Tân Hưng
    recoded under Decision 20, the department moved behind a new hub and renamed."""
    return (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, "H53")
        .hub("00.99.W00", PROVINCE)
        .via_hub(PROVINCE, HUB, name="UBND tỉnh Tây Ninh", paired_code="H53")
        .via_hub(DISTRICT, HUB, name="UBND huyện Tân Châu", **closed(full(PROVINCE)))
        .via_hub(COMMUNE, HUB, name="UBND xã Tân Hòa", **closed(partial("H53.101", "H53.102")))
        .via_hub("H53.101", HUB, name="UBND xã Tân Hưng", former_codes=["000.22.32.H53"])
        .via_hub("H53.102", HUB, name="UBND xã Tân Đông", effective=REFORM)
        .via_hub("000.00.04.H53", "00.99.W00", name="Sở Tài chính tỉnh Tây Ninh")
        .direct("000.00.05.H53", name="Sở Nội vụ")
    )


def test_the_reform_shows_each_kind_of_change() -> None:
    diff = diff_directories(before(), after().build())
    assert diff.problems == ()
    assert set(diff.changes) == {
        Change(ChangeKind.PAIRED, PROVINCE, None, "H53"),
        Change(ChangeKind.MERGED, DISTRICT, after=REFORM, successors=(PROVINCE,)),
        Change(ChangeKind.SPLIT, COMMUNE, after=REFORM, successors=("H53.101", "H53.102")),
        # recoded under Decision 20 and moved up from its closed district to the province
        Change(
            ChangeKind.MOVED,
            "000.22.32.H53",
            f"hub {HUB}, under {DISTRICT}",
            f"hub {HUB}, under {PROVINCE}",
        ),
        Change(ChangeKind.RECODED, "000.22.32.H53", "000.22.32.H53", "H53.101"),
        Change(ChangeKind.RENAMED, "000.00.04.H53", "Sở Tài chính", "Sở Tài chính tỉnh Tây Ninh"),
        Change(ChangeKind.MOVED, "000.00.04.H53", "direct", "hub 00.99.W00"),
        Change(ChangeKind.REACTIVATED, "000.00.05.H53"),
        Change(ChangeKind.ADDED, "H53.102", after="UBND xã Tân Đông"),
        Change(ChangeKind.HUB_ADDED, "00.99.W00", after="Hub 00.99.W00"),
    }
    assert diff.counts()["split"] == 1


def test_a_closure_without_successor_and_a_hub_closing_are_shown() -> None:
    old = DirectoryBuilder().hub(HUB, PROVINCE).via_hub(PROVINCE, HUB).direct(DISTRICT).build()
    new = (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, status="closed", closes=REFORM)
        .direct(PROVINCE)
        .direct(DISTRICT, status="closed", closes=REFORM)
        .build()
    )
    changes = diff_directories(old, new).changes
    assert Change(ChangeKind.CLOSED, DISTRICT, after=REFORM) in changes
    assert Change(ChangeKind.HUB_CLOSED, HUB, after=REFORM) in changes
    assert Change(ChangeKind.MOVED, PROVINCE, f"hub {HUB}", "direct") in changes


def test_a_version_that_drops_a_code_or_reopens_a_closed_one_has_problems() -> None:
    old = after().build()
    new = (
        DirectoryBuilder()
        .hub(HUB, PROVINCE, "H53")
        .via_hub(PROVINCE, HUB, name="UBND tỉnh Tây Ninh", paired_code="H53")
        .via_hub(DISTRICT, HUB, name="UBND huyện Tân Châu")
        .build()
    )
    problems = diff_directories(old, new).problems
    assert (
        f"{DISTRICT}: closed on 2025-07-01 but active again in directory; a closed code never "
        "comes back"
    ) in problems
    assert (
        f"{COMMUNE}: listed in directory but gone from directory; close it instead (a closed "
        "code stays resolvable forever)"
    ) in problems
    assert "hub 00.99.W00: listed in directory but gone from directory; close it instead" in (
        problems
    )


def test_the_same_version_twice_has_no_changes() -> None:
    diff = diff_directories(after().build(), after().build())
    assert (diff.changes, diff.problems, diff.counts()) == ((), (), {})


def write(directory: Directory, path: Path) -> Path:
    dump_directory(directory.file, path)
    return path


def test_the_command_prints_the_changes_and_json_when_asked(tmp_path: Path) -> None:
    old = write(before(), tmp_path / "old.yaml")
    new = write(after().build(), tmp_path / "new.json")
    runner = CliRunner()
    text = runner.invoke(app, ["diff", str(old), str(new)])
    assert text.exit_code == 0, text.output
    assert f"{old} → {new}: 1 added, 1 merged, 1 split, 1 recoded" in text.stdout
    assert f"  merged       {DISTRICT}: - → 2025-07-01 → {PROVINCE}" in text.stdout
    as_json = runner.invoke(app, ["diff", str(old), str(new), "--json"])
    report = json.loads(as_json.stdout)
    assert report["counts"]["moved"] == 2  # one to another hub, one to another parent
    assert {"kind": "split", "code": COMMUNE, "after": REFORM} | {
        "successors": ["H53.101", "H53.102"]
    } in report["changes"]
    assert report["problems"] == []


def test_the_command_refuses_an_invalid_version_with_its_precise_error(tmp_path: Path) -> None:
    old = write(before(), tmp_path / "old.yaml")
    new = tmp_path / "new.yaml"
    new.write_text(old.read_text("utf-8").replace("version: 1", "version: 2"), "utf-8")
    result = CliRunner().invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert "agencies[5] (000.00.05.H53).active: version 2 has no 'active'" in result.stderr


def test_the_command_exits_1_when_the_new_version_rewrites_history(tmp_path: Path) -> None:
    old = write(after().build(), tmp_path / "old.yaml")
    new = write(before(), tmp_path / "new.yaml")
    result = CliRunner().invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert f"{DISTRICT}: closed on 2025-07-01 but active again in {new}" in result.stderr
