"""``python -m tests.soak [--minutes N] [--rate R] [--interval S] [--out DIR] [--keep]``
(``--rejudge``: no run, judge ``samples.json`` again and rewrite the report and plot)

A long run of mixed traffic through a real router and real drop-folder adapters
(tests/soak/README.md). Writes ``report.md``, ``soak.png`` and ``samples.json`` to ``--out``
(``tests/soak/`` by default) and exits 1 when a measure keeps growing after warm-up or
anything was lost, delivered twice or not answered.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backbone.logs import configure_logging
from tests.conftest import REPO
from tests.soak.counts import Counts
from tests.soak.report import failures, judge_all, plot, render
from tests.soak.run import Settings, SoakRun, soak
from tests.soak.sampling import Sample

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of traffic")
    parser.add_argument("--rate", type=float, default=4.0, help="envelopes per second")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "soak")
    parser.add_argument("--keep", action="store_true", help="keep the run's folders and logs")
    parser.add_argument(
        "--rejudge",
        action="store_true",
        help="no run: judge --out's samples.json again, rewrite report.md and soak.png",
    )
    args = parser.parse_args(argv)
    if args.rejudge:
        raw = json.loads((args.out / "samples.json").read_text())
        return _write(_load(raw), args.out, when=raw["when"], machine=raw["machine"], rejudged=True)
    root = Path(tempfile.mkdtemp(prefix="soak-", dir=_work_dir()))
    settings = Settings(
        minutes=args.minutes,
        rate=args.rate,
        interval=args.interval,
        amqp_url=os.environ.get("AMQP_URL", AMQP_URL),
        root=root,
    )
    configure_logging(json=True, level="ERROR")  # G01's client here: refusals are expected
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    run = asyncio.run(soak(settings, _say))
    machine = f"{platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()})"
    args.out.mkdir(parents=True, exist_ok=True)
    raw = {"when": when, "machine": machine, **_raw(run)}
    (args.out / "samples.json").write_text(json.dumps(raw, indent=1) + "\n")
    status = _write(run, args.out, when=when, machine=machine)
    if args.keep or status:
        print(f"[soak] logs and folders kept in {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return status


def _write(run: SoakRun, out: Path, *, when: str, machine: str, rejudged: bool = False) -> int:
    """Judge, write report.md and soak.png, print the report: the exit status."""
    measures = judge_all(run)
    report = render(run, measures, when=when, machine=machine, rejudged=rejudged)
    (out / "report.md").write_text(report)
    plot(run, measures, out / "soak.png")
    print(report)
    return 1 if failures(measures, run.counts) else 0


def _say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _work_dir() -> Path:
    work = REPO / "build" / "soak"
    work.mkdir(parents=True, exist_ok=True)
    return work


def _raw(run: SoakRun) -> dict[str, object]:
    return {
        "settings": {k: str(v) for k, v in dataclasses.asdict(run.settings).items()},
        "events": run.events,
        "seconds": run.seconds,
        "drain_seconds": run.drain_seconds,
        "counts": dataclasses.asdict(run.counts),
        "samples": [dataclasses.asdict(sample) for sample in run.samples],
    }


def _load(raw: dict[str, Any]) -> SoakRun:
    """A run as ``_raw`` wrote it (NaN for readings that failed, as Python writes it)."""
    given = raw["settings"]
    settings = Settings(
        minutes=float(given["minutes"]),
        rate=float(given["rate"]),
        interval=float(given["interval"]),
        amqp_url=given["amqp_url"],
        root=Path(given["root"]),
    )
    samples = [Sample(**sample) for sample in raw["samples"]]
    return SoakRun(
        settings,
        samples,
        Counts(**raw["counts"]),
        [(at, what) for at, what in raw["events"]],
        seconds=raw["seconds"],
        drain_seconds=raw["drain_seconds"],
    )


if __name__ == "__main__":
    sys.exit(main())
