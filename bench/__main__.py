"""``python -m bench [--quick]``: the router against the broker's own ceiling, in one run.

Writes bench/results.json, bench/report.md and bench/latency.png (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from backbone.broker.management import ManagementClient
from backbone.directory import dump_directory, generate_directory, load_directory
from backbone.logs import configure_logging
from bench.bare_path import measure_bare_path
from bench.ceiling import measure_ceiling
from bench.cpu import local_broker_pid
from bench.gateway import measure_gateway_send
from bench.large import MiB, measure_large_document
from bench.latency import measure_adapter_and_latency
from bench.path import cpu_budget, measure_rsa_floor, path_budget, replicas_summary
from bench.progress import Reporter
from bench.reform import measure_reform
from bench.report import write_outputs
from bench.router import measure_router
from bench.tracking import measure_tracking
from bench.world import ONE_RECIPIENT, SENDER, THREE_RECIPIENTS, World, broker_url

HERE = Path(__file__).resolve().parent
LOADS = (100, 200, 300, 500, 1000)  # the issue asks for 100, 500, 1000; 200, 300 find the knee

# counts per mode: ceiling messages, router envelopes, latency seconds per load, adapter
# publish sample, documents sent by the Python API and by the gateway each, documents in the
# tracking history, RSA operations per round of the floor, the large document's MiB
MODES = {
    "quick": {
        "ceiling": 3000,
        "router": 600,
        "router_64k": 300,
        "latency_s": 1.5,
        "publish": 1000,
        "gateway": 200,
        "tracking_documents": 1000,
        "rsa": 50,
        "large_mib": 64,
        "reform_provinces": 8,
        "reform_envelopes": 600,
    },
    "full": {
        "ceiling": 20000,
        "router": 4000,
        "router_64k": 2000,
        "latency_s": 5.0,
        "publish": 4000,
        "gateway": 1000,
        "tracking_documents": 20000,
        "rsa": 200,
        "large_mib": 1024,
        "reform_provinces": 63,
        "reform_envelopes": 3000,
    },
}


# A router's load: the first in its process, no organ code parsed before (CPU seconds).
_FIRST_LOAD = (
    "import sys, time; from backbone.directory import load_directory; "
    "started = time.process_time(); load_directory(sys.argv[1]); "
    "print(time.process_time() - started)"
)


def measure_directory_load(root: Path, rounds: int = 3) -> dict[str, object]:
    """Generate the synthetic country directory to JSON in both file versions; time
    ``load_directory`` on each (version 2 with its paired codes, the default) as a router
    starts: the median CPU time of ``rounds`` fresh processes, the versions alternating (in
    one process the second load would reuse the first's parsed codes); then the router's
    lookup by code against the time-aware one."""
    paths = {version: root / f"country-v{version}.json" for version in (1, 2)}
    for version, path in paths.items():
        dump_directory(generate_directory(0, version=version), path)
    samples: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for version, path in paths.items():
            command = [sys.executable, "-c", _FIRST_LOAD, str(path)]
            samples[version].append(float(subprocess.check_output(command, cwd=HERE.parent)))
    seconds = {version: statistics.median(values) for version, values in samples.items()}
    path = paths[2]
    directory = load_directory(path)
    codes = [str(agency.organ_code) for agency in directory.agencies]
    paired = [str(a.paired_code) for a in directory.agencies if a.paired_code is not None]
    at = datetime(2026, 1, 1, tzinfo=UTC)  # any instant: nothing in it closes
    return {
        "agencies": len(directory.agencies),
        "hubs": len(directory.hubs),
        "paired_codes": len(paired),
        "file_bytes": path.stat().st_size,
        "load_seconds": round(seconds[2], 3),
        "version_1_load_seconds": round(seconds[1], 3),
        "get_ns": _per_call_ns(directory.get, codes),
        "resolve_ns": _per_call_ns(lambda code: directory.lookup(code, at), codes),
        "resolve_paired_ns": _per_call_ns(lambda code: directory.lookup(code, at), paired),
    }


def _per_call_ns(call: Callable[[str], object], codes: list[str]) -> float:
    """Nanoseconds per call over every code, best of three passes (timeit, one run)."""
    best = min(timeit.repeat(lambda: [call(code) for code in codes], number=1, repeat=3))
    return round(best / len(codes) * 1e9, 1)


async def run(mode: str, counts: dict[str, float], reporter: Reporter) -> dict[str, object]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vdx-bench-") as tmp:
        root = Path(tmp)
        reporter.note("setting up: PKI, broker users, topology (fresh prefix)")
        world = await World.create(broker_url(), root)
        reporter.note(f"prefix {world.names.prefix}")
        try:
            results = await _measure(world, counts, reporter, root)
        finally:
            await world.close()
            management = ManagementClient.from_env()
            await management.delete_prefixed(world.names.prefix)
    results["mode"] = mode
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


async def _measure(
    world: World, counts: dict[str, float], reporter: Reporter, root: Path
) -> dict[str, object]:
    # The message size of the router test: a sealed 4 KiB, 1-recipient envelope.
    size = len(world.seal_router_envelope(ONE_RECIPIENT, 4096))
    broker_pid = local_broker_pid()  # None: the broker's CPU is not measured
    n = int(counts["ceiling"])
    ceiling = await measure_ceiling(
        world.exchange.amqp_url,
        world.names.prefix,
        count=n,
        size=size,
        progress=reporter.counter(f"ceiling forwarder ({size} B)", n),
        broker_pid=broker_pid,
    )
    await world.purge(f"{world.names.prefix}.bench.ceiling.target")

    runs: list[dict[str, object]] = []
    plan = [
        ("sqlite", 4096, ONE_RECIPIENT, "router", 1),
        ("memory", 4096, ONE_RECIPIENT, "router", 1),
        ("sqlite", 4096, THREE_RECIPIENTS, "router", 1),
        ("sqlite", 65536, ONE_RECIPIENT, "router_64k", 1),
        ("sqlite", 65536, THREE_RECIPIENTS, "router_64k", 1),
        ("memory", 65536, THREE_RECIPIENTS, "router_64k", 1),
        # replicas on PostgreSQL sharing one inbound queue: one, then two
        ("postgresql", 4096, ONE_RECIPIENT, "router", 1),
        ("postgresql", 4096, ONE_RECIPIENT, "router", 2),
    ]
    for store, payload, recipients, key, replicas in plan:
        n = int(counts[key])
        label = f"router {store} {payload // 1024}K x{len(recipients)}"
        label += f" ({replicas} replicas)" if replicas > 1 else ""
        runs.append(
            await measure_router(
                world,
                store=store,
                payload_bytes=payload,
                recipients=recipients,
                count=n,
                seal_progress=reporter.counter(f"seal  {label}", n),
                progress=reporter.counter(label, n),
                broker_pid=broker_pid,
                replicas=replicas,
            )
        )

    reporter.note("floor: RSA-2048 private-key operations (cryptography)")
    rsa_us = measure_rsa_floor(world.exchange.pki.agency(SENDER).key, int(counts["rsa"]))
    measured = await measure_adapter_and_latency(
        world,
        loads=LOADS,
        seconds=float(counts["latency_s"]),
        publish_sample=int(counts["publish"]),
        progress=lambda name, done, total: reporter.update(f"latency {name}", done, total),
        broker_pid=broker_pid,
    )
    # The broker's floor at the same loads, with envelopes of the same size (bench/bare_path.py).
    bare_path = await measure_bare_path(
        world.exchange.amqp_url,
        world.names.prefix,
        loads=LOADS,
        seconds=float(counts["latency_s"]),
        size=int(str(measured.adapter["envelope_bytes"])),
        broker_pid=broker_pid,
        progress=lambda name, done, total: reporter.update(name, done, total),
    )
    gateway = await measure_gateway_send(
        world,
        int(counts["gateway"]),
        progress=lambda name, done, total: reporter.update(name, done, total),
    )
    large = await measure_large_document(
        world, size=int(counts["large_mib"]) * MiB, note=reporter.note
    )
    reporter.note("directory: generating and loading the synthetic country")
    directory = measure_directory_load(root)
    documents = int(counts["tracking_documents"])
    reporter.note(f"tracking: {documents:,} documents' history on SQLite and PostgreSQL")
    tracking = await measure_tracking(root, documents)
    reform = await measure_reform(
        world.exchange.amqp_url,
        root / "reform",
        provinces=int(counts["reform_provinces"]),
        envelopes=int(counts["reform_envelopes"]),
        progress=reporter.note,
    )

    def router_rate(store: str, payload: int, recipients: int) -> float | None:
        for entry in runs:
            if (entry["store"], entry["payload_bytes"], entry["recipients"]) == (
                store,
                payload,
                recipients,
            ):
                return float(str(entry["per_s"]))
        return None

    adapter, latency = measured.adapter, measured.loads
    router_per_s = router_rate("sqlite", 4096, 1)
    main_run = next(
        r for r in runs if (r["store"], r["payload_bytes"], r["recipients"]) == ("sqlite", 4096, 1)
    )
    ceiling_per_s = float(ceiling["per_s"])
    peaks = [float(str(entry["peak_rss_mb"])) for entry in runs]
    peaks.append(round((measured.router_peak_rss_kib or 0) / 1024, 1))
    under_100 = [
        int(str(entry["offered_per_s"]))
        for entry in latency
        if entry["p99_ms"] is not None
        and float(str(entry["p99_ms"])) < 100
        and entry["lost_or_late"] == 0
    ]
    return {
        "schema": 2,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "broker": await ManagementClient.from_env().version(),
        },
        "ceiling_per_s": ceiling_per_s,
        "ceiling": ceiling,
        "router_per_s": router_per_s,
        "router_memory_per_s": router_rate("memory", 4096, 1),
        "router_ratio": round(router_per_s / ceiling_per_s, 3) if router_per_s else None,
        "router_runs": runs,
        "cpu_budget": cpu_budget(ceiling, main_run),
        "latency": latency,
        "max_load_p99_under_100ms": max(under_100) if under_100 else None,
        "latency_cpu": measured.cpu,
        "latency_at_capacity": measured.at_capacity,
        "path_cpu": path_budget(
            seal_us=adapter["seal_cpu_us"],
            latency_cpu=measured.cpu,
            rsa_us=rsa_us,
            ceiling_broker_us=ceiling["broker_cpu_us_per_message"],
            bare_path=bare_path,
        ),
        "bare_path": bare_path,
        "router_replicas": replicas_summary(runs),
        "adapter": adapter,
        "adapter_send_per_s": adapter["send_per_s"],
        "gateway": gateway,
        "gateway_send_per_s": gateway["gateway_per_s"],
        "large_document": large,
        "router_peak_rss_mb": max(peaks),
        "router_rss_source": "VmHWM of the router subprocess (bench.router_proc), max over runs",
        "directory": directory,
        "directory_load_seconds": directory["load_seconds"],
        "tracking": tracking,
        "reform": reform,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts: a minute or two")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the outputs")
    parser.add_argument(
        "--large-mib", type=int, help="the large document's size in MiB (64 quick, 1024 full)"
    )
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    mode = "quick" if args.quick else "full"
    counts = MODES[mode] if args.large_mib is None else {**MODES[mode], "large_mib": args.large_mib}
    with Reporter() as reporter:
        results = asyncio.run(run(mode, counts, reporter))
        written = write_outputs(results, args.out)
        reporter.note(f"done in {results['wall_seconds']} s: " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
