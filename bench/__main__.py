"""``python -m bench [--quick]``: the router against the broker's own ceiling, in one run.

Writes bench/results.json, bench/report.md and bench/latency.png (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from backbone.broker.management import ManagementClient
from backbone.directory import dump_directory, generate_directory, load_directory
from backbone.logs import configure_logging
from bench.ceiling import measure_ceiling
from bench.latency import measure_adapter_and_latency
from bench.progress import Reporter
from bench.report import write_outputs
from bench.router import measure_router
from bench.world import ONE_RECIPIENT, THREE_RECIPIENTS, World

HERE = Path(__file__).resolve().parent
LOADS = (100, 500, 1000)

# counts per mode: (ceiling messages, router envelopes, latency seconds per load,
# adapter publish sample)
MODES = {
    "quick": {"ceiling": 3000, "router": 600, "router_64k": 300, "latency_s": 1.5, "publish": 1000},
    "full": {
        "ceiling": 20000,
        "router": 4000,
        "router_64k": 2000,
        "latency_s": 5.0,
        "publish": 4000,
    },
}


def broker_url() -> str:
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def measure_directory_load(root: Path) -> dict[str, object]:
    """Generate the synthetic country directory to JSON; time ``load_directory`` on it."""
    path = root / "country.json"
    dump_directory(generate_directory(0), path)
    started = time.perf_counter()
    directory = load_directory(path)
    seconds = time.perf_counter() - started
    return {
        "agencies": len(directory.agencies),
        "hubs": len(directory.hubs),
        "file_bytes": path.stat().st_size,
        "load_seconds": round(seconds, 3),
    }


async def run(mode: str, reporter: Reporter) -> dict[str, object]:
    counts = MODES[mode]
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
    n = int(counts["ceiling"])
    ceiling = await measure_ceiling(
        world.exchange.amqp_url,
        world.names.prefix,
        count=n,
        size=size,
        progress=reporter.counter(f"ceiling forwarder ({size} B)", n),
    )
    await world.purge(f"{world.names.prefix}.bench.ceiling.target")

    runs: list[dict[str, object]] = []
    plan = [
        ("sqlite", 4096, ONE_RECIPIENT, "router"),
        ("memory", 4096, ONE_RECIPIENT, "router"),
        ("sqlite", 4096, THREE_RECIPIENTS, "router"),
        ("sqlite", 65536, ONE_RECIPIENT, "router_64k"),
        ("sqlite", 65536, THREE_RECIPIENTS, "router_64k"),
        ("memory", 65536, THREE_RECIPIENTS, "router_64k"),
    ]
    for store, payload, recipients, key in plan:
        n = int(counts[key])
        label = f"router {store} {payload // 1024}K x{len(recipients)}"
        runs.append(
            await measure_router(
                world,
                store=store,
                payload_bytes=payload,
                recipients=recipients,
                count=n,
                seal_progress=reporter.counter(f"seal  {label}", n),
                progress=reporter.counter(label, n),
            )
        )

    adapter, latency, latency_rss = await measure_adapter_and_latency(
        world,
        loads=LOADS,
        seconds=float(counts["latency_s"]),
        publish_sample=int(counts["publish"]),
        progress=lambda name, done, total: reporter.update(f"latency {name}", done, total),
    )
    reporter.note("directory: generating and loading the synthetic country")
    directory = measure_directory_load(root)

    def router_rate(store: str, payload: int, recipients: int) -> float | None:
        for entry in runs:
            if (entry["store"], entry["payload_bytes"], entry["recipients"]) == (
                store,
                payload,
                recipients,
            ):
                return float(str(entry["per_s"]))
        return None

    router_per_s = router_rate("sqlite", 4096, 1)
    ceiling_per_s = float(ceiling["per_s"])
    peaks = [float(str(entry["peak_rss_mb"])) for entry in runs]
    peaks.append(round((latency_rss or 0) / 1024, 1))
    under_100 = [
        int(str(entry["offered_per_s"]))
        for entry in latency
        if entry["p99_ms"] is not None
        and float(str(entry["p99_ms"])) < 100
        and entry["lost_or_late"] == 0
    ]
    return {
        "schema": 1,
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
        "latency": latency,
        "max_load_p99_under_100ms": max(under_100) if under_100 else None,
        "adapter": adapter,
        "adapter_send_per_s": adapter["send_per_s"],
        "router_peak_rss_mb": max(peaks),
        "router_rss_source": "VmHWM of the router subprocess (bench.router_proc), max over runs",
        "directory": directory,
        "directory_load_seconds": directory["load_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts: under a minute")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the outputs")
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    mode = "quick" if args.quick else "full"
    with Reporter() as reporter:
        results = asyncio.run(run(mode, reporter))
        written = write_outputs(results, args.out)
        reporter.note(f"done in {results['wall_seconds']} s: " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
