"""The soak's verdicts and report: a table per measure (start, end, max, growth verdict),
the counts, and one plot with a panel per measure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.soak.counts import Counts
from tests.soak.growth import Tolerance, Verdict, judge
from tests.soak.run import SoakRun
from tests.soak.sampling import as_series

__all__ = ["Measure", "judge_all", "plot", "render"]

MB = 1024 * 1024
WARMUP = 0.2


@dataclass(frozen=True)
class Measure:
    series: str  # "rss router", "queued", ...
    values: list[float]
    unit: str
    scale: float
    verdict: Verdict | None  # None: not judged (the store grows by design)

    def show(self, value: float) -> str:
        if math.isnan(value):
            return "–"
        scaled = value / self.scale
        return f"{scaled:,.1f}" if self.scale != 1 else f"{scaled:,.0f}"

    @property
    def read(self) -> list[float]:
        return [v for v in self.values if not math.isnan(v)]


def tolerance_of(series: str, rate: float) -> tuple[str, float, Tolerance | None]:
    """Unit, scale and the growth allowed after warm-up for one series."""
    measure = series.split(" ", 1)[0]
    if measure == "rss":  # the flat processes of the committed run moved under 0.5 MiB
        return "MiB", MB, Tolerance(absolute=2 * MB, relative=0.01)
    if measure == "fds":
        return "fds", 1, Tolerance(absolute=5)
    if measure == "tasks":
        return "tasks", 1, Tolerance(absolute=10, relative=0.1)
    if measure == "quarantined":  # kept for operators, one per refused envelope
        return "messages", 1, None
    if measure == "queued":  # fifteen seconds of traffic: a backlog that drains is no leak
        return "messages", 1, Tolerance(absolute=15 * rate)
    if series == "store per envelope":
        return "KiB", 1024, Tolerance(absolute=256, relative=0.05)
    return "MiB", MB, None  # the store itself: one record per envelope, it must grow


def judge_all(run: SoakRun) -> list[Measure]:
    measures = []
    for name, values in as_series(run.samples).items():
        unit, scale, tolerance = tolerance_of(name, run.settings.rate)
        verdict = judge(values, tolerance, warmup=WARMUP) if tolerance is not None else None
        measures.append(Measure(name, values, unit, scale, verdict))
    return measures


def failures(measures: Sequence[Measure], counts: Counts) -> list[str]:
    grown = [m.series for m in measures if m.verdict is not None and m.verdict.growing]
    return ([f"keeps growing after warm-up: {', '.join(grown)}"] if grown else []) + (
        counts.problems
    )


def render(
    run: SoakRun, measures: Sequence[Measure], *, when: str, machine: str, rejudged: bool = False
) -> str:
    settings, counts = run.settings, run.counts
    problems = failures(measures, counts)
    lines = [
        "# Soak report",
        "",
        f"`make soak` (`python -m tests.soak --minutes {settings.minutes:g} --rate "
        f"{settings.rate:g}`), {when}, on {machine}. Exit status: "
        f"**{1 if problems else 0}** ({'; '.join(problems) or 'nothing grew, nothing lost'}).",
        "",
        f"{run.seconds / 60:.1f} minutes of traffic at {settings.rate:g} envelopes per second "
        f"(tests/soak/traffic.py), then {run.drain_seconds:.0f} s until everything had "
        f"arrived; a sample every {settings.interval:g} s ({len(run.samples)} samples). "
        f"Growth is judged on the samples after the first {WARMUP:.0%} (tests/soak/growth.py): "
        "a measure keeps growing when both the maximum and the median of the last third "
        "exceed those of the middle third by more than its tolerance.",
        "",
        "Faults: " + "; ".join(f"{what} at {at:.0f} s" for at, what in run.events) + ".",
        "",
        *(
            [
                "Verdicts judged again from this run's `samples.json` with the tolerances of "
                "the current code (`python -m tests.soak --rejudge`; tests/soak/README.md).",
                "",
            ]
            if rejudged
            else []
        ),
        "## Measures",
        "",
        "| measure | unit | start | end | max | middle third max → last third max | verdict |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for m in measures:
        read = m.read or [math.nan]
        verdict = m.verdict
        thirds = f"{m.show(verdict.middle_max)} → {m.show(verdict.last_max)}" if verdict else "–"
        word = verdict.word if verdict else f"not judged ({NOT_JUDGED[m.series]})"
        lines.append(
            f"| {m.series} | {m.unit} | {m.show(read[0])} | {m.show(read[-1])} | "
            f"{m.show(max(read))} | {thirds} | {word} |"
        )
    lines += ["", "## Counts", "", "| count | value |", "|---|---:|"]
    lines += [f"| {label} | {value:,} |" for label, value in _count_rows(counts).items()]
    lines += [
        "",
        "![soak](soak.png)",
        "",
        "Processes: `router` (``backbone router run``, SQLite store, killed with SIGKILL and "
        "restarted), `G22` (the sending drop-folder adapter; with the router behind the cut "
        "proxy), and one drop-folder adapter per recipient agency. `queued`: messages ready "
        "or unacknowledged in all the run's queues but the quarantine (management API); "
        "`quarantined`: refused envelopes kept in the quarantine queue for operators. "
        "`store`: the SQLite "
        "file with its WAL and shared-memory files.",
        "",
    ]
    return "\n".join(lines)


def _count_rows(counts: Counts) -> Mapping[str, int]:
    return {
        "documents accepted (G22 drop folder and G01 raw)": counts.documents,
        "deliveries expected (document × recipient)": counts.deliveries,
        "delivered": counts.delivered,
        "lost": counts.lost,
        "delivered twice": counts.duplicates,
        "delivered that should not have been": counts.unexpected,
        "statuses 01 back at the sender": counts.statuses,
        "envelopes resent unchanged": counts.resent,
        "answered `duplicate`": counts.duplicates_told,
        "answered `routed` again (resumed after the kill)": counts.resends_routed_again,
        "envelopes that must be refused": counts.refused,
        "answered `rejected`": counts.rejections_told,
        "dead-lettered instead (told `dead_lettered`)": counts.refusals_dead_lettered,
        "G22 documents in failed/": counts.sender_failed,
        "G01 documents told `routed` twice": counts.routed_told_twice,
        "operators' events read": counts.operator_events,
    }


NOT_JUDGED = {
    "store": "one record per envelope, kept",
    "quarantined": "one per refused envelope, kept for operators",
}
PANELS = (("rss", "RSS (MiB)"), ("fds", "open fds"), ("tasks", "asyncio tasks"))


def plot(run: SoakRun, measures: Sequence[Measure], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {m.series: m for m in measures}
    minutes = [s.at / 60 for s in run.samples]
    figure, axes = plt.subplots(5, 1, figsize=(10, 14), sharex=True)
    for axis, (measure, title) in zip(axes, PANELS, strict=False):
        for m in measures:
            if m.series.startswith(f"{measure} "):
                axis.plot(minutes, [v / m.scale for v in m.values], label=m.series.split(" ", 1)[1])
        axis.set_ylabel(title)
        axis.legend(fontsize="small", ncol=5, loc="upper left")
    axes[3].plot(minutes, by_name["queued"].values, color="tab:purple", label="queued")
    axes[3].plot(minutes, by_name["quarantined"].values, color="tab:gray", label="quarantined")
    axes[3].set_ylabel("messages")
    axes[3].legend(fontsize="small", loc="upper left")
    store = by_name["store"]
    axes[4].plot(minutes, [v / MB for v in store.values], color="tab:brown")
    axes[4].set_ylabel("store (MiB)")
    axes[4].set_xlabel("minutes")
    total = run.seconds / 60
    for axis in axes:
        axis.axvspan(0, total * WARMUP, color="0.9", zorder=0)
        for at, _ in run.events:
            axis.axvline(at / 60, color="tab:red", linestyle=":", linewidth=1)
    for at, what in run.events:  # named once, at the top of the first panel
        axes[0].annotate(
            what,
            (at / 60, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize="x-small",
            color="tab:red",
        )
        axis.grid(alpha=0.3)
    axes[0].set_title("soak: warm-up shaded, faults dotted (router kill, broker cut)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
