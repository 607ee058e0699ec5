"""scripts/clock-check itself: it must catch a test that reads the machine's date, and
leave alone one that takes the product's clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[1] / "scripts" / "clock-check"

SAMPLE = """
from datetime import date

from backbone.clock import VIETNAM, edxml_now, today_in


def test_reads_the_machines_date():
    assert date.today() == today_in(VIETNAM)  # wrong at 17:01 UTC on a UTC machine


def test_takes_the_products_clock():
    assert edxml_now().date() == today_in(VIETNAM)
"""


def test_the_clock_check_fails_on_a_test_that_reads_the_machines_date(tmp_path: Path) -> None:
    if shutil.which("faketime") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the clock check needs faketime in CI (.ci/run installs it)")
        pytest.skip("faketime is not installed (apt-get install faketime)")
    (tmp_path / "test_sample.py").write_text(SAMPLE)

    done = subprocess.run(
        [sys.executable, str(CHECK), "test_sample.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    report = done.stdout + done.stderr
    assert done.returncode == 1, report
    assert "test_sample::test_reads_the_machines_date" in report
    assert "test_sample::test_takes_the_products_clock" not in report
    assert "17:01 UTC, TZ=UTC" in report
    assert "outcomes depend on the machine's clock or zone" in report
