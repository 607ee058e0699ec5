"""``python -m tests.fuzz [--seconds N] [--target NAME ...] [--report PATH] [--keep]``

Runs each target for a fixed budget in its own process and writes the report to stdout and
to ``tests/fuzz/report.md`` (or ``--report``). Exits 1 when any target had a finding.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.fuzz.report import TargetResult, parse_output, render
from tests.fuzz.seeds import REGRESSIONS, REPO, seed_dirs
from tests.fuzz.targets import TARGETS  # for names only: the workers import them instrumented

TARGET_NAMES = tuple(TARGETS)
WORK = REPO / "build" / "fuzz"  # the growing corpus and the findings (git-ignored)
PER_INPUT_TIMEOUT = 10  # seconds: one input taking longer is a hang
RSS_LIMIT_MB = 1536  # the fuzzing process at large is a blow-up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=int, default=120, help="budget per target")
    parser.add_argument("--target", action="append", choices=TARGET_NAMES)
    parser.add_argument("--report", type=Path, default=REPO / "tests" / "fuzz" / "report.md")
    parser.add_argument(
        "--keep", action="store_true", help="copy each finding into regressions/<target>/"
    )
    args = parser.parse_args(argv)
    results = [_run(name, args.seconds, keep=args.keep) for name in args.target or TARGET_NAMES]
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = render(results, when=when, machine=machine)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text, encoding="utf-8")
    return 1 if any(r.findings for r in results) else 0


def _run(name: str, seconds: int, *, keep: bool) -> TargetResult:
    corpus, artifacts = WORK / name / "corpus", WORK / name / "findings"
    last_input = WORK / name / "last-input"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        seeds = seed_dirs(name, Path(scratch))
        command = [
            sys.executable, "-m", "tests.fuzz.worker", name, str(last_input),
            f"-max_total_time={seconds}",
            f"-timeout={PER_INPUT_TIMEOUT}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            str(corpus), *map(str, seeds),
        ]  # fmt: skip
        print(f"fuzz: {name}, {TARGETS[name].what}, for {seconds} s", file=sys.stderr, flush=True)
        output, returncode = _fuzz(command, seconds)
    (WORK / name / "fuzzer.log").write_text(output, encoding="utf-8")
    result = parse_output(TargetResult(name, seconds, returncode=returncode), output)
    for finding in result.findings:
        if finding.artifact is None and last_input.is_file():
            # libFuzzer died or hung before saving it (a corrupted heap): the worker's copy.
            saved = artifacts / f"{finding.kind}-{_sha1(last_input.read_bytes())}"
            shutil.copy(last_input, saved)
            finding.artifact = str(saved)
        if keep and finding.artifact and Path(finding.artifact).is_file():
            (REGRESSIONS / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(finding.artifact, REGRESSIONS / name / Path(finding.artifact).name)
    return result


def _fuzz(command: list[str], seconds: int) -> tuple[str, int]:
    """libFuzzer's output and exit code; a worker still running well past its budget
    (libFuzzer's crash handler deadlocked on a corrupted heap) is killed and reported."""
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            returncode = worker.wait(timeout=seconds * 2 + 300)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            returncode = -9
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    if returncode == -9:
        output += "\nERROR: libFuzzer: the worker hung past its budget and was killed\n"
    return output, returncode


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
