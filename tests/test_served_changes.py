"""What a directory version changes for the agencies an adapter serves
(adapters.served_changes), on the test directory's files: a recoded code is named with the
agency's new code, and what the running version already said is not said again. The
broker-backed warning is in tests/test_directory_follow.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.served_changes import served_changes
from backbone.directory import Directory, load_directory
from testkit.exchange import HUB, VIA_HUB, build_directory
from tests.test_directory_apply import MERGE, MERGED, X, Y, write_version

AT = datetime(2025, 7, 2, tzinfo=UTC)  # the day after the change takes effect
RECODED, NEW_CODE = "H53.318.02", "H53.318.03"


def versions(root: Path, changes: dict[str, dict[str, object]]) -> tuple[Directory, Directory]:
    base = build_directory()
    before = load_directory(write_version(root / "r1.json", base, 1))
    return before, load_directory(write_version(root / "r2.json", base, 2, changes))


def test_a_recoded_served_code_is_named_with_the_agencys_new_code(tmp_path: Path) -> None:
    recode = {"organ_code": NEW_CODE, "former_codes": [RECODED], "effective": MERGE}
    before, after = versions(tmp_path, {RECODED: recode})

    [change] = served_changes(before, after, VIA_HUB, system=HUB, at=AT)

    assert (change.agency, change.change, change.now_code) == (RECODED, "recoded", NEW_CODE)
    assert change.now_served_by == (HUB,)  # the same hub: only the code to configure changed


def test_what_the_running_version_already_said_is_not_said_again(tmp_path: Path) -> None:
    before, after = versions(tmp_path, MERGED)

    [closed] = served_changes(before, after, [X], system=X, at=AT)
    again = served_changes(after, after, [X], system=X, at=AT)

    assert (closed.change, closed.successors, closed.now_served_by) == ("closed", (Y,), (Y,))
    assert again == []
