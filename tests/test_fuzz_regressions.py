"""Every input the fuzzer kept (tests/fuzz/regressions/<target>/) goes through its target
again: each may raise only its reader's documented errors, and quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz.seeds import REGRESSIONS
from tests.fuzz.targets import TARGETS

# Well under the fuzzer's per-input timeout (10 s) on a loaded machine: a kept hang that
# came back would take far longer.
SECONDS_PER_INPUT = 5.0

INPUTS = sorted(path for path in REGRESSIONS.glob("*/*") if path.is_file())


def test_every_regression_folder_is_a_target() -> None:
    folders = {path.name for path in REGRESSIONS.iterdir() if path.is_dir()}
    assert folders <= set(TARGETS), folders - set(TARGETS)
    assert INPUTS, "no kept regression input: tests/fuzz/regressions/ is empty"


@pytest.mark.parametrize("path", INPUTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_kept_fuzz_input_raises_only_documented_errors(path: Path) -> None:
    started = time.perf_counter()
    TARGETS[path.parent.name].run(path.read_bytes())
    assert time.perf_counter() - started < SECONDS_PER_INPUT
