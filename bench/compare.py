"""``python -m bench.compare REV [REV ...]``: routers of several revisions, in one run.

Each revision is checked out in a temporary git worktree (with this checkout's
``bench/router_proc.py``, so all speak the same protocol) and its router runs the benchmark's
router measurement (pre-filled inbound queue, SQLite or memory store, 4 KiB, 1 recipient)
against the same broker and envelopes, revisions alternating for ``--rounds`` rounds, so
machine noise spreads over all of them. It prints, per revision, the median rate and the
median CPU time per envelope (steadier than rates on a shared machine). This is how
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
from bench.cpu import local_broker_pid
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


async def compare(revisions: list[str], *, store: str, count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vdx-compare-") as tmp:
        root = Path(tmp)
        trees = {revision: checkout(revision, root / "trees") for revision in revisions}
        world = await World.create(broker_url(), root / "world")
        runs: dict[str, list[dict[str, object]]] = {revision: [] for revision in revisions}
        broker_pid = local_broker_pid()
        try:
            for round_number in range(1, rounds + 1):
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
                    print(
                        f"round {round_number} {revision:>12}: {result['per_s']:>8}/s "
                        f"{result['cpu_us_per_envelope']:>6} µs CPU per envelope "
                        f"(broker {result['broker_cpu_us_per_envelope']} µs)",
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
    print("| revision | envelopes/s | CPU µs per envelope |\n|---|---|---|")
    for revision, results in runs.items():
        rate = statistics.median(float(str(r["per_s"])) for r in results)
        cpu = statistics.median(float(str(r["cpu_us_per_envelope"])) for r in results)
        print(f"| `{revision}` | {rate:,.0f} | {cpu:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument(
        "revisions",
        nargs="+",
        help="git revisions (commits, branches, tags) or checkouts (. for this one)",
    )
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(compare(args.revisions, store=args.store, count=args.count, rounds=args.rounds))


if __name__ == "__main__":
    main()
