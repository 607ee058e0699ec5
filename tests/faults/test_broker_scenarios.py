"""The broker itself failing, on throwaway nodes (tests/support/broker_nodes.py), never on the
shared one: a restart of the broker application, and a three-node cluster losing the node that
leads the quorum queues."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.faults.harness import H41, RouterProcess, Run, exchange_on, run_with_fault
from tests.support import Exchange
from tests.support.broker_nodes import LocalCluster, LocalNode, local_node_fixture  # noqa: F401

pytestmark = [pytest.mark.faults, pytest.mark.broker]

RESTART_PAUSE = 3.0  # seconds the broker stays down


async def test_broker_restarted_mid_run_with_stop_app_and_start_app_loses_nothing(
    local_node: LocalNode, tmp_path: Path
) -> None:
    async with exchange_on(local_node.url, tmp_path) as exchange:
        run = Run(exchange, tmp_path)
        router = RouterProcess(exchange, tmp_path)

        async def restart_the_broker() -> str:
            await asyncio.to_thread(local_node.stop_app)
            await asyncio.sleep(RESTART_PAUSE)
            await asyncio.to_thread(local_node.start_app)
            return f"down {RESTART_PAUSE:.0f}s"

        outcome = await run_with_fault(run, [router], restart_the_broker)
    result = run.result("broker stop_app/start_app", f"at {outcome.at_fault}; {outcome.note}")
    for process_log in (router.log, run.sender.log, run.recipient.log):
        assert "reconnected" in process_log.read_text(), f"{process_log.name}: no reconnect"
    outcome.check(result, logs=router.tail())


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalCluster]:
    started = LocalCluster(tmp_path / "nodes", prefix=f"vdxq{secrets.token_hex(3)}n")
    await asyncio.to_thread(started.start)
    try:
        # Clients and the harness's management calls go to the first node, which survives.
        monkeypatch.setenv("VDX_MANAGEMENT_URL", started.nodes[0].management_url)
        yield started
    finally:
        await asyncio.to_thread(started.cleanup)


async def test_cluster_node_leading_the_quorum_queues_killed_mid_run_loses_nothing(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    entry, leading = cluster.nodes[0], cluster.nodes[1]
    async with exchange_on(entry.url, tmp_path) as exchange:
        run = Run(exchange, tmp_path)
        # Declared through the second node, the quorum queues get their leader there
        # (client-local placement), while every client connects to the first one.
        _declare_topology(exchange, tmp_path, leading.url)
        queues = [exchange.names.inbound_queue, exchange.inbox_of(H41)]
        leaders = {queue: cluster.leader_of(queue) for queue in queues}
        assert set(leaders.values()) == {leading}, leaders
        router = RouterProcess(exchange, tmp_path, amqp_url=entry.url)

        async def kill_the_leader() -> str:
            killed = await asyncio.to_thread(cluster.kill_leader_of, queues[0])
            assert killed is leading
            return f"{killed.name} killed"

        outcome = await run_with_fault(run, [router], kill_the_leader)
        new_leaders = {queue: cluster.leader_of(queue) for queue in queues}
    result = run.result(
        "3-node cluster, quorum leader kill -9",
        f"at {outcome.at_fault}; {outcome.note}; new leaders: "
        + ", ".join(sorted({node.name for node in new_leaders.values()})),
    )
    assert leading not in new_leaders.values()
    outcome.check(result, logs=router.tail())


def _declare_topology(exchange: Exchange, root: Path, amqp_url: str) -> None:
    """``backbone topology apply`` for the exchange's directory, through ``amqp_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "backbone",
            "topology",
            "apply",
            "--directory",
            str(root / "directory.yaml"),
            "--prefix",
            exchange.names.prefix,
            "--amqp-url",
            amqp_url,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
