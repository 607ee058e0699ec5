"""The 2025 reform as a worked example (``backbone.directory.reform``, ``backbone directory
reform``): a synthetic country's next version, checked in detail on a six-province country,
and for its figures and times at country size. The instant asked about is fixed, after the
reform; no test reads the machine's clock."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backbone.cli import app
from backbone.directory import (
    CodeRole,
    Directory,
    DirectoryFile,
    Share,
    State,
    Status,
    dump_directory,
    generate_directory,
    load_directory,
)
from backbone.directory.reform import Reform, Reformed, reform_directory
from backbone.directory.succession import succession
from backbone.errors import DirectoryError
from backbone.organ import CodeFormat

pytestmark = pytest.mark.clock

AFTER = datetime(2025, 7, 2, tzinfo=UTC)  # the day after the reform took effect
runner = CliRunner()


@pytest.fixture(scope="module")
def pre() -> DirectoryFile:
    return generate_directory(seed=5, provinces=6)


@pytest.fixture(scope="module")
def reformed(pre: DirectoryFile) -> Reformed:
    return reform_directory(pre, seed=11)


@pytest.fixture(scope="module")
def before(pre: DirectoryFile) -> Directory:
    return Directory(pre)


@pytest.fixture(scope="module")
def after(reformed: Reformed) -> Directory:
    return Directory(reformed.file)


def province_of(code: str) -> str:
    return f"000.00.00.{code.rsplit('.', 1)[-1]}" if code[0].isdigit() else ""


def test_merged_provinces_close_into_the_keeper_as_their_one_full_successor(
    reformed: Reformed, before: Directory, after: Directory
) -> None:
    merged = reformed.summary.merged_provinces
    assert len(merged) == reformed.summary.provinces_after == 3
    assert sum(len(others) for others in merged.values()) == 3  # 6 → 3
    for keeper, others in merged.items():
        kept = after.agency(keeper)
        assert kept.status is Status.ACTIVE
        assert (kept.name, kept.codes) == (before.agency(keeper).name, before.agency(keeper).codes)
        for other in others:
            closed = after.agency(other)
            assert closed.status is Status.CLOSED
            assert closed.closes == date(2025, 7, 1)
            assert [(str(s.organ_code), s.share) for s in closed.successors] == [
                (keeper, Share.FULL)
            ]
            assert after.hub(f"00.{other[-2:]}.W00").status is Status.CLOSED
        assert after.hub(f"00.{keeper[-2:]}.W00").status is Status.ACTIVE


def test_every_agency_of_a_merged_province_reaches_the_keeper(
    reformed: Reformed, before: Directory, after: Directory
) -> None:
    """Each one's documents have one full heir in the keeper's province, but a split
    commune's, which have several partial ones there; a kept commune is recoded under it."""
    for keeper, others in reformed.summary.merged_provinces.items():
        key = keeper[-3:]
        for other in others:
            for agency in before.subtree(other):
                code = str(agency.organ_code)
                resolution = after.resolve(code, AFTER)
                if resolution.state is State.ACTIVE:  # recoded: the same agency
                    assert resolution.role is CodeRole.FORMER
                    assert resolution.agency.organ_code.levels[0] == key
                    continue
                heirs = after.heirs(code, AFTER)
                assert heirs, code
                assert all(h.agency.organ_code.levels[0] == key for h in heirs), code
                if len(heirs) == 1:
                    assert heirs[0].share is Share.FULL, code
                else:
                    assert {h.share for h in heirs} == {Share.PARTIAL}, code


def test_districts_close_into_their_new_province_and_kept_communes_move_up(
    reformed: Reformed, before: Directory, after: Directory
) -> None:
    keeper_of = {k: k for k in reformed.summary.merged_provinces} | {
        other: keeper
        for keeper, others in reformed.summary.merged_provinces.items()
        for other in others
    }
    districts = [a for a in before if a.organ_code.level == 2 and a.organ_code.levels[1] >= "30"]
    assert len(districts) == reformed.summary.districts_closed > 0
    for district in districts:
        closed = after.agency(district.organ_code)
        heir = keeper_of[province_of(str(district.organ_code))]
        assert [(str(s.organ_code), s.share) for s in closed.successors] == [(heir, Share.FULL)]
    kept = [a for a in after if a.parent is not None]
    assert len(kept) == reformed.summary.communes_kept > 0
    for commune in kept:
        assert commune.status is Status.ACTIVE
        assert commune.organ_code == before.agency(commune.organ_code).organ_code  # same code
        assert str(commune.parent) == province_of(str(commune.organ_code))
        assert str(commune.parent) in reformed.summary.merged_provinces


def test_merged_communes_have_one_new_commune_and_split_ones_two_to_five(
    reformed: Reformed, before: Directory, after: Directory
) -> None:
    communes = [a for a in before if a.organ_code.level == 3 and a.organ_code.levels[1] >= "30"]
    merged = split = 0
    for commune in communes:
        now = after.lookup(commune.organ_code, AFTER)
        assert now is not None
        if now.agency.status is Status.ACTIVE:
            continue  # kept
        successors = now.agency.successors
        new = [after.agency(s.organ_code) for s in successors]
        assert all(a.effective == date(2025, 7, 1) for a in new)
        assert all(a.organ_code.format is CodeFormat.QD20 for a in new)
        assert len({a.organ_code.levels[0] for a in new}) == 1  # within one province
        if len(successors) == 1:
            assert successors[0].share is Share.FULL
            merged += 1
        else:
            assert 2 <= len(successors) <= 5
            assert {s.share for s in successors} == {Share.PARTIAL}
            split += 1
    summary = reformed.summary
    assert (merged, split) == (summary.communes_merged, summary.communes_split)
    assert split == pytest.approx(len(communes) * 460 / 10_000, abs=3)
    assert summary.communes_after == pytest.approx(len(communes) * 3_321 / 10_000, abs=4)
    active_communes = [
        a
        for a in after
        if a.active and (a.organ_code.format is CodeFormat.QD20 or a.parent is not None)
    ]
    assert len(active_communes) == summary.communes_after


def test_the_loader_and_succession_accept_it_and_diff_counts_each_change(
    pre: DirectoryFile, reformed: Reformed, tmp_path: Path
) -> None:
    old, new = tmp_path / "pre.json", tmp_path / "post.json"
    dump_directory(pre.model_copy(update={"revision": 4}), old)
    dump_directory(reform_directory(load_directory(old).file, seed=11).file, new)
    loaded = load_directory(new)
    assert loaded.file.revision == 5
    assert succession(load_directory(old), loaded).problems == ()

    result = runner.invoke(app, ["directory", "diff", str(old), str(new), "--json"])
    assert result.exit_code == 0, result.output
    summary = reformed.summary
    closed_provinces = [o for others in summary.merged_provinces.values() for o in others]
    # A closed province's head, departments and units under them merge into the keeper's.
    departments_side = [
        a
        for code in closed_provinces
        for a in Directory(pre).subtree(code)
        if a.organ_code.level == 1 or a.organ_code.levels[1] < "30"
    ]
    recoded = summary.communes_recoded
    assert json.loads(result.stdout)["counts"] == {
        "added": summary.communes_new,
        "merged": len(departments_side) + summary.districts_closed + summary.communes_merged,
        "split": summary.communes_split,
        "recoded": recoded,
        # recoded ones to the keeper's hub; kept ones up from their closed district
        "moved": recoded + summary.communes_kept,
        "paired": recoded,  # the old paired code is a former code now
        "hub-closed": len(closed_provinces),
    }


def test_the_same_seed_gives_the_same_version_and_another_seed_another(
    pre: DirectoryFile, reformed: Reformed
) -> None:
    assert reform_directory(pre, seed=11) == reformed
    assert reform_directory(pre, seed=12).file != reformed.file


def test_a_version_1_country_is_refused_with_what_to_do() -> None:
    with pytest.raises(DirectoryError, match=r"needs version 2 \(backbone directory generate"):
        reform_directory(generate_directory(seed=5, provinces=2, version=1))


def test_a_country_reformed_already_is_refused_naming_its_new_communes(
    reformed: Reformed,
) -> None:
    first = next(a for a in reformed.file.agencies if a.organ_code.format is CodeFormat.QD20)
    with pytest.raises(DirectoryError, match=r"looks reformed already") as refused:
        reform_directory(reformed.file, seed=1)
    assert f"are in service ({first.organ_code}, " in refused.value.message


def test_the_command_writes_the_next_revision_and_refuses_a_bad_day(tmp_path: Path) -> None:
    old, new = tmp_path / "pre.json", tmp_path / "post.yaml"
    assert (
        runner.invoke(app, ["directory", "generate", str(old), "--provinces", "3"]).exit_code == 0
    )
    result = runner.invoke(app, ["directory", "reform", str(old), str(new), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert f"{new}: revision 1," in result.stdout
    assert "provinces 3 → 2" in result.stdout
    assert f"{old} → {new}: " in result.stdout
    assert load_directory(new).file == reform_directory(load_directory(old).file, seed=2).file

    later = runner.invoke(
        app, ["directory", "reform", str(old), str(tmp_path / "x.json"), "--effective", "1/7/25"]
    )
    assert later.exit_code == 1
    assert later.stderr == "error: --effective: '1/7/25' is not a day (YYYY-MM-DD)\n"


def test_at_country_size_the_figures_are_near_2025s(tmp_path: Path) -> None:
    """63 → 34 provinces, ~10,000 → ~3,321 communes, ~460 split; the times to produce and
    to check it are printed (a record, not a bound)."""
    pre = generate_directory(seed=0)
    started = time.perf_counter()
    reformed = reform_directory(pre, Reform(), seed=0)
    produced = time.perf_counter()
    problems = succession(Directory(pre), Directory(reformed.file)).problems
    checked = time.perf_counter()
    summary = reformed.summary
    print(
        f"\ncountry-size reform: provinces {summary.provinces_before} → "
        f"{summary.provinces_after}, communes {summary.communes_before} → "
        f"{summary.communes_after} ({summary.communes_split} split, {summary.communes_new} new, "
        f"{summary.communes_kept} kept, {summary.communes_recoded} recoded), "
        f"{summary.districts_closed} districts closed\nproduced in {produced - started:.2f} s, "
        f"checked (index + succession) in {checked - produced:.2f} s"
    )
    assert problems == ()
    assert (summary.provinces_before, summary.provinces_after) == (63, 34)
    assert 9_500 <= summary.communes_before <= 10_600
    assert 3_200 <= summary.communes_after <= 3_450
    assert 420 <= summary.communes_split <= 500
    assert summary.districts_closed > 600
