"""``python -m bench.compare REV [REV ...]``: routers of several revisions, in one run.

Each revision is checked out in a temporary git worktree (with this checkout's
``bench/router_proc.py``, so all speak the same protocol) and its router runs the benchmark's
router measurement (pre-filled inbound queue, SQLite, memory or PostgreSQL store, 4 KiB,
1 recipient) against the same broker and envelopes, revisions alternating for ``--rounds``
rounds, so machine noise spreads over all of them. It prints, per revision, the median rate
and the median CPU time per envelope (steadier than rates on a shared machine), the router's
and the broker's. With ``--ceiling N`` each round first runs the bare forwarder
(``bench.ceiling``) on N messages of the envelope's size, and each revision's ``cpu_ratio``
(issue 21: forwarder + broker CPU per message ÷ router + broker CPU per envelope) is taken
per round against that round's forwarder: the benchmark's CPU step alone. This is how
bench/OPTIMISATIONS.md was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from backbone.broker.management import ManagementClient
from bench.__main__ import broker_url
from bench.ceiling import measure_ceiling
from bench.cpu import local_broker_pid
from bench.path import cpu_budget
from bench.router import HERE, measure_router
from bench.world import ONE_RECIPIENT, World


def checkout(revision: str, root: Path) -> Path:
    """A worktree of ``revision`` under ``root``, running this checkout's router_proc; a
    directory (``.``: this checkout, uncommitted changes included) is used as it is."""
    if Path(revision).is_dir():
        return Path(revision).resolve()
    tree = root / revision.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(tree), revision],
        check=True,
    )
    shutil.copy(HERE / "bench" / "router_proc.py", tree / "bench" / "router_proc.py")
    return tree


async def compare(
    revisions: list[str], *, store: str, count: int, rounds: int, ceiling: int = 0
) -> None:
    with tempfile.TemporaryDirectory(prefix="vdx-compare-") as tmp:
        root = Path(tmp)
        trees = {revision: checkout(revision, root / "trees") for revision in revisions}
        world = await World.create(broker_url(), root / "world")
        runs: dict[str, list[dict[str, object]]] = {revision: [] for revision in revisions}
        ratios: dict[str, list[float]] = {revision: [] for revision in revisions}
        broker_pid = local_broker_pid()
        size = len(world.seal_router_envelope(ONE_RECIPIENT, 4096))
        try:
            for round_number in range(1, rounds + 1):
                forwarder: dict[str, object] | None = None
                if ceiling:
                    forwarder = dict(
                        await measure_ceiling(
                            world.exchange.amqp_url,
                            world.names.prefix,
                            count=ceiling,
                            size=size,
                            broker_pid=broker_pid,
                        )
                    )
                    await world.purge(f"{world.names.prefix}.bench.ceiling.target")
                    print(
                        f"round {round_number} {'forwarder':>12}: {forwarder['per_s']:>8}/s "
                        f"{forwarder['forwarder_cpu_us_per_message']:>6} µs CPU per message "
                        f"(broker {forwarder['broker_cpu_us_per_message']} µs)",
                        flush=True,
                    )
                for revision, tree in trees.items():
                    result = await measure_router(
                        world,
                        store=store,
                        payload_bytes=4096,
                        recipients=ONE_RECIPIENT,
                        count=count,
                        source=tree,
                        broker_pid=broker_pid,
                    )
                    runs[revision].append(result)
                    ratio = (
                        None if forwarder is None else cpu_budget(forwarder, result)["cpu_ratio"]
                    )
                    if ratio is not None:
                        ratios[revision].append(float(str(ratio)))
                    print(
                        f"round {round_number} {revision:>12}: {result['per_s']:>8}/s "
                        f"{result['cpu_us_per_envelope']:>6} µs CPU per envelope "
                        f"(broker {result['broker_cpu_us_per_envelope']} µs)"
                        + ("" if ratio is None else f", cpu_ratio {ratio}"),
                        flush=True,
                    )
        finally:
            await world.close()
            await ManagementClient.from_env().delete_prefixed(world.names.prefix)
            for tree in trees.values():
                if not tree.is_relative_to(root):
                    continue
                subprocess.run(
                    ["git", "-C", str(HERE), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    print(f"\n{store} store, 4 KiB, 1 recipient, {count} envelopes, median of {rounds}:")
    print(
        "| revision | envelopes/s | router CPU µs per envelope | broker CPU µs per envelope "
        "| cpu_ratio |\n|---|---|---|---|---|"
    )
    for revision, results in runs.items():
        rate = statistics.median(float(str(r["per_s"])) for r in results)
        cpu = statistics.median(float(str(r["cpu_us_per_envelope"])) for r in results)
        broker = [
            float(str(r["broker_cpu_us_per_envelope"]))
            for r in results
            if r["broker_cpu_us_per_envelope"] is not None
        ]
        broker_text = f"{statistics.median(broker):,.0f}" if broker else "–"
        ratio_text = f"{statistics.median(ratios[revision]):.3f}" if ratios[revision] else "–"
        print(f"| `{revision}` | {rate:,.0f} | {cpu:,.0f} | {broker_text} | {ratio_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument(
        "revisions",
        nargs="+",
        help="git revisions (commits, branches, tags) or checkouts (. for this one)",
    )
    parser.add_argument("--store", choices=("sqlite", "memory", "postgresql"), default="sqlite")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ceiling",
        type=int,
        default=0,
        metavar="N",
        help="run the bare forwarder on N messages each round and report cpu_ratio",
    )
    args = parser.parse_args()
    asyncio.run(
        compare(
            args.revisions,
            store=args.store,
            count=args.count,
            rounds=args.rounds,
            ceiling=args.ceiling,
        )
    )


if __name__ == "__main__":
    main()
