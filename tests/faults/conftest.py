"""``make faults``: the fault scenarios run only when selected (``-m faults``), never in a
plain ``pytest``; the table of results is printed at the end of the run.

A scenario's rows travel in its test report (``user_properties``), so the table is the same
whether the scenarios ran in this process or in pytest-xdist workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.faults.harness import DOCUMENTS, RESULTS, Result, exchange_on
from tests.support import Exchange

COLUMNS = ("scenario", "sent", "delivered", "duplicates delivered", "lost", "statuses complete")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the scenarios out unless ``-m`` names the ``faults`` marker: each moves a few
    thousand documents through killed and restarted processes (minutes, not seconds)."""
    if "faults" in (config.option.markexpr or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("faults") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = chosen


RESULT_PROPERTY = "fault_scenario_result"
REPORTED: list[Result] = []  # the rows of every scenario's report, wherever it ran


@pytest.fixture(autouse=True)
def _results_travel_with_the_report(request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(RESULTS)
    yield
    for result in RESULTS[before:]:
        request.node.user_properties.append((RESULT_PROPERTY, asdict(result)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        REPORTED.extend(
            Result(**value) for name, value in report.user_properties if name == RESULT_PROPERTY
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTED:
        return
    terminalreporter.write_sep("=", f"fault scenarios ({DOCUMENTS} documents each)")
    for line in render_table(REPORTED):
        terminalreporter.write_line(line)
    failed = [r.scenario for r in REPORTED if not r.ok]
    verdict = f"FAILED: {', '.join(failed)}" if failed else "lost = 0 and duplicates = 0 everywhere"
    terminalreporter.write_line(verdict)


def render_table(results: list[Result]) -> list[str]:
    rows = [
        (
            r.scenario,
            str(r.sent),
            str(r.delivered),
            str(r.duplicates),
            str(r.lost),
            "n/a"
            if r.statuses is None
            else f"{'yes' if r.statuses_complete else 'NO'} ({r.statuses}/{r.delivered})",
            f"{r.seconds:.0f}s",
            r.notes,
        )
        for r in results
    ]
    header = (*COLUMNS, "time", "notes")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            cell.ljust(width) if i in (0, len(cells) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in rows)]


@pytest.fixture(autouse=True)
def _adapters_use_their_own_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapter configurations are built in this process: no VDX_AMQP_URL may override the
    system's own broker user in them."""
    monkeypatch.delenv("VDX_AMQP_URL", raising=False)


@pytest.fixture
async def shared_exchange(amqp_url: str, tmp_path: Path) -> AsyncIterator[Exchange]:
    """A fresh exchange on the shared broker: own prefix, own broker users, removed after."""
    async with exchange_on(amqp_url, tmp_path) as exchange:
        yield exchange
