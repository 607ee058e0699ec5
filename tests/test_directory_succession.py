"""Which version may follow the running one (``backbone.directory.succession``) and how a
version is identified (``backbone.directory.versions``): no broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backbone.directory import Directory, dump_directory, load_directory
from backbone.directory.check_apart import check_apart
from backbone.directory.succession import succession
from backbone.errors import DirectoryError
from testkit.exchange import build_directory

X, Y = "000.07.12.H41", "000.00.00.H41"
MERGED = {
    "status": "closed",
    "closes": "2025-07-01",
    "successors": [{"organ_code": Y, "share": "full"}],
}


def version(
    revision: int | None,
    changes: dict[str, dict[str, Any]] | None = None,
    *,
    tiers: str | None = None,
) -> Directory:
    """The test directory as version 2 with ``revision``, ``changes`` per organ code."""
    base = build_directory().file
    agencies = [
        a.model_dump(mode="json", exclude_defaults=True)
        | (changes or {}).get(str(a.organ_code), {})
        for a in base.agencies
    ]
    hubs = [h.model_dump(mode="json", exclude_defaults=True) for h in base.hubs]
    file = Directory.from_entries(agencies, hubs, tiers=tiers, version=2).file
    return Directory(file.model_copy(update={"revision": revision}))


def test_a_version_with_a_higher_revision_and_a_growing_history_may_follow() -> None:
    result = succession(version(3), version(4, {X: MERGED}))
    assert result.problems == ()
    assert [change.line() for change in result.diff.changes] == [
        f"merged       {X}: - → 2025-07-01 → {Y}"
    ]


def test_the_same_an_older_or_no_revision_is_refused_naming_the_running_one() -> None:
    for revision in (3, 2):
        [problem] = succession(version(3), version(revision, {X: MERGED})).problems
        assert problem.startswith(f"revision: {revision} is not after the running revision 3")
    [problem] = succession(version(3), version(None, {X: MERGED})).problems
    assert problem == (
        "revision: directory has none; a version to apply carries a revision higher than the "
        "running one (3)"
    )


def test_another_tier_model_is_refused_it_needs_a_restart() -> None:
    [problem] = succession(version(3), version(4, tiers="two-level")).problems
    assert problem.startswith("tiers: the tier model differs from the running one")


def test_a_version_that_rewrites_history_is_refused_as_diff_says() -> None:
    [problem] = succession(version(3, {X: MERGED}), version(4)).problems
    assert problem.startswith(f"{X}: closed on 2025-07-01 but active again")


def test_a_version_id_is_the_same_written_as_json_or_yaml(tmp_path: Path) -> None:
    directory = version(7)
    dump_directory(directory.file, tmp_path / "d.json")
    dump_directory(directory.file, tmp_path / "d.yaml")
    ids = {load_directory(tmp_path / name).version.id for name in ("d.json", "d.yaml")}
    assert ids == {directory.version.id}
    assert directory.version.id == f"7:{directory.version.digest}"
    assert len(directory.version.digest) == 64
    assert version(7, {X: MERGED}).version.digest != directory.version.digest


def test_a_revision_needs_version_2(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "version: 1\nrevision: 2\nagencies:\n"
        "  - {organ_code: '000.00.00.G22', name: G22, connection: direct, broker_account: a}\n",
        "utf-8",
    )
    with pytest.raises(DirectoryError, match=r"revision: needs version: 2 \(this file says"):
        load_directory(path)


async def test_another_process_gives_the_same_verdict_as_succession_here() -> None:
    # A replica's check (backbone.directory.check_apart): the running version travels as its
    # JSON, the received one as it came; only the verdict comes back.
    running = version(3, tiers="two-level")
    for new in (version(4, {X: MERGED}, tiers="two-level"), version(4, {X: MERGED})):
        data = new.file.model_dump_json(exclude_unset=True).encode()
        verdict = await check_apart(running, data, "json", source="received", base_dir=None)
        assert verdict.error is None
        assert verdict.version_id == new.version.id
        assert verdict.problems == succession(running, new).problems
    assert verdict.problems  # the second has another tier model than the running one


async def test_another_process_says_why_a_version_could_not_be_loaded() -> None:
    verdict = await check_apart(
        version(3), b'{"version": 2, "agen', "json", source="received", base_dir=None
    )
    assert verdict.error is not None
    assert verdict.error.startswith("received: not valid JSON (")
    assert verdict.error.endswith("so it was cut short")
