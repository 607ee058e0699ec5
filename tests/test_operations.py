"""docs/operations.md has a runbook for every alert of deploy/prometheus/alerts.yml, and every
alert's ``runbook_url`` lands on a heading that exists (anchors as GitHub renders them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _headings(path: Path) -> dict[str, str]:
    """Anchor -> heading text of every Markdown heading in ``path``."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            found[_anchor(match.group(1))] = match.group(1).strip()
    return found


def _section(name: str) -> str:
    """The text of the runbook section headed ``### name``, up to the next heading."""
    text = RUNBOOK.read_text(encoding="utf-8")
    match = re.search(rf"^### {re.escape(name)}\n(.*?)(?=^#)", text + "\n#", re.M | re.S)
    assert match, f"no section for {name}"
    return match.group(1)


def test_every_alert_has_a_runbook_section_saying_what_it_means_what_to_look_at_and_do() -> None:
    names = [rule["alert"] for rule in _alerts()]
    assert len(names) >= 20
    for name in names:
        section = _section(name)
        for part in ("**Means:**", "**Look at:**", "**Do:**"):
            assert part in section, (name, part)


def test_every_runbook_url_resolves_to_the_alerts_own_heading() -> None:
    for rule in _alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        target = ROOT / path
        assert target == RUNBOOK, url
        headings = _headings(target)
        assert anchor in headings, f"{url}: no such heading"
        assert headings[anchor] == rule["alert"], url


def test_every_section_is_an_alert_that_exists() -> None:
    """A renamed or removed alert leaves no stale runbook behind."""
    sections = re.findall(r"^### (\S+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    assert sorted(sections) == sorted(rule["alert"] for rule in _alerts())


def test_links_within_the_runbook_resolve() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    headings = _headings(RUNBOOK)
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in headings, anchor
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (RUNBOOK.parent / target).exists(), target


DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "vdx-backbone.json"


def test_every_dashboard_panel_says_what_to_do_when_it_looks_wrong() -> None:
    """Each panel's description (Grafana shows it on the panel's (i)); its runbook links
    land on headings of docs/operations.md."""
    import json

    headings = _headings(RUNBOOK)
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    for panel in panels:
        if panel.get("type") == "row":
            continue
        description = panel.get("description", "")
        assert len(description) > 60, f"{panel['title']}: no description an operator can act on"
        for anchor in re.findall(r"docs/operations\.md#([\w-]+)", description):
            assert anchor in headings, f"{panel['title']}: no heading #{anchor}"
