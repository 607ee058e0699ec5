"""Every alert in deploy/prometheus/alerts.yml evaluated by Prometheus' own rule engine
(``promtool test rules``) against input series that must fire it and series that must not,
its labels and annotations compared exactly (tests/prometheus/alerts_test.yml).

promtool is Debian's ``prometheus`` package: without it the tests fail in CI (``CI=true``,
.ci/run installs it) and are skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the alert tests need promtool in CI (.ci/run installs it)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alert_names() -> list[str]:
    groups = _yaml(ALERTS)["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def _cases() -> list[dict[str, Any]]:
    """Every alert_rule_test entry of the promtool test file."""
    return [case for group in _yaml(ALERT_TESTS)["tests"] for case in group["alert_rule_test"]]


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout


def test_the_unit_tests_load_the_deployed_rules() -> None:
    rule_files = _yaml(ALERT_TESTS)["rule_files"]
    assert [(ALERT_TESTS.parent / path).resolve() for path in rule_files] == [ALERTS]


def test_every_alert_has_a_case_that_fires_it_and_one_that_must_not() -> None:
    """A new alert without both cases fails here, so no alert ships untested."""
    names = _alert_names()
    assert len(names) == len(set(names)), "an alert name is used twice"
    firing = {case["alertname"] for case in _cases() if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in _cases() if case.get("exp_alerts") == []}
    assert sorted(set(names) - firing) == [], "alerts with no case that fires them"
    assert sorted(set(names) - quiet) == [], "alerts with no case where they must not fire"
    # A misspelt name would make its "must not fire" case pass whatever the rule does.
    tested = {case["alertname"] for case in _cases()}
    assert sorted(tested - set(names)) == [], "cases for alerts that do not exist"


def test_every_firing_case_states_labels_and_annotations() -> None:
    """promtool compares the whole label and annotation sets; an omitted exp_annotations
    would then expect none, so each expected alert spells out its severity and summary."""
    for case in _cases():
        for expected in case.get("exp_alerts") or []:
            assert "severity" in expected.get("exp_labels", {}), case["alertname"]
            assert "summary" in expected.get("exp_annotations", {}), case["alertname"]
