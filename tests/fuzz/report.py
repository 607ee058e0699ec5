"""Read libFuzzer's output for one target and write the report.

libFuzzer prints status lines such as ``#4096 pulse cov: 812 ft: 2301 corp: 140/31Kb ...
exec/s: 680 rss: 190Mb``, final ``stat::`` lines (``-print_final_stats=1``) and, for a
finding, an ``ERROR: libFuzzer: ...`` line (or atheris' ``Uncaught Python exception``) and
``Test unit written to <path>``. The last status line holds the figures at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Finding", "TargetResult", "parse_output", "render"]

_STATUS = re.compile(
    r"^#(?P<runs>\d+)\s+\w+\s+cov: (?P<cov>\d+) ft: (?P<ft>\d+) corp: (?P<corpus>\d+)/\S+"
)
_STAT = re.compile(r"^stat::(?P<key>\w+):\s+(?P<value>\d+)")
_WRITTEN = re.compile(r"Test unit written to (?P<path>\S+)")
_ERROR = re.compile(r"ERROR: libFuzzer: (?P<what>.+)")


@dataclass
class Finding:
    kind: str  # crash (an undocumented exception), timeout, oom, ...
    summary: str
    artifact: str | None


@dataclass
class TargetResult:
    name: str
    seconds: int
    executions: int = 0
    exec_per_second: int = 0
    coverage: int = 0  # libFuzzer's cov: edges of the instrumented backbone code
    features: int = 0  # ft:
    corpus: int = 0
    peak_rss_mb: int = 0
    findings: list[Finding] = field(default_factory=list)
    returncode: int = 0


def parse_output(result: TargetResult, output: str) -> TargetResult:
    lines = output.splitlines()
    stats: dict[str, int] = {}
    exception: list[str] = []
    in_exception = False
    for line in lines:
        if status := _STATUS.match(line):
            result.executions = int(status["runs"])
            result.coverage, result.features = int(status["cov"]), int(status["ft"])
            result.corpus = int(status["corpus"])
        elif stat := _STAT.match(line):
            stats[stat["key"]] = int(stat["value"])
        if "Uncaught Python exception" in line:
            in_exception = True
        elif in_exception:
            if line.strip() and not line.startswith("=="):
                exception.append(line)
            else:
                in_exception = bool(not line.strip() and not exception)
    result.executions = stats.get("number_of_executed_units", result.executions)
    result.exec_per_second = stats.get("average_exec_per_sec", 0)
    result.peak_rss_mb = stats.get("peak_rss_mb", 0)
    errors = [match["what"] for line in lines if (match := _ERROR.search(line))]
    written = [match["path"] for line in lines if (match := _WRITTEN.search(line))]
    if errors or written or exception or result.returncode != 0:
        artifact = written[0] if written else None
        kind = Path(artifact).name.split("-")[0] if artifact else "error"
        summary = exception[-1].strip() if exception else (errors[0] if errors else "")
        if not summary:
            summary = f"the fuzzer exited with {result.returncode}"
        result.findings.append(Finding(kind, summary, artifact))
    return result


def render(results: list[TargetResult], *, when: str, machine: str) -> str:
    rows = [
        "# Fuzz report",
        "",
        f"Run {when} on {machine} with `python -m tests.fuzz` (tests/fuzz/README.md). "
        "cov and ft are libFuzzer's coverage edges and features of the instrumented "
        "`backbone` and `adapters` code, plus the outcome slots of `tests/fuzz/feedback.py` "
        "(each distinct outcome of the compiled libxml2, pydantic-core and json, an error "
        "type at a field, counts "
        "as an edge: most of the events target's cov); corpus is the inputs kept for new "
        "coverage.",
        "",
        "| target | budget (s) | executions | exec/s | cov | ft | corpus | peak RSS (MB) "
        "| findings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.name} | {r.seconds} | {r.executions:,} | {r.exec_per_second:,} "
            f"| {r.coverage:,} | {r.features:,} | {r.corpus:,} | {r.peak_rss_mb:,} "
            f"| {len(r.findings)} |"
        )
    findings = [(r.name, f) for r in results for f in r.findings]
    rows += ["", "## Findings", ""]
    if not findings:
        rows.append("None: every input raised only the documented errors, within the limits.")
    for name, finding in findings:
        rows.append(f"- **{name}**, {finding.kind}: {finding.summary} (input: {finding.artifact})")
    return "\n".join(rows) + "\n"
