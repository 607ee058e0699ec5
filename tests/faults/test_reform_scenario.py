"""The whole country's reform applied live while documents flow: the suite's test
(tests/test_directory_reform_live.py, 3 provinces there) at 63 provinces with the ministries.
It runs on a throwaway node (tests/support/broker_nodes.py): its 570 quorum queues made the
shared broker stop answering handshakes for everyone else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import RESULTS, Result
from tests.support.broker_nodes import LocalNode, local_node_fixture  # noqa: F401
from tests.test_directory_reform_live import apply_reform_while_documents_flow, country_world

pytestmark = [pytest.mark.faults, pytest.mark.broker]

PROVINCES = 63


async def test_the_whole_country_reformed_live_forwards_refuses_and_loses_none(
    local_node: LocalNode, tmp_path: Path
) -> None:
    started = time.perf_counter()
    async with country_world(local_node.url, tmp_path, PROVINCES, ministries=True) as world:
        set_up = time.perf_counter() - started
        run = await apply_reform_while_documents_flow(world)
    RESULTS.append(
        Result(
            scenario=f"country reform live ({PROVINCES} provinces, {run.agencies} agencies)",
            sent=run.sent,
            # refused splits are answered, not delivered: the sender was told (the assertions)
            delivered=run.delivered,
            duplicates=0,  # each inbox held its documents exactly once (the assertions)
            lost=run.sent - run.delivered - run.refused,
            statuses=None,
            seconds=time.perf_counter() - started,
            notes=(
                f"throwaway node; set-up {set_up:.0f}s; version taken up "
                f"{run.taken_up_seconds:.1f}s after apply; {run.before_version} decided before "
                f"it, {run.forwarded} forwarded to the heir, {run.refused} refused (split) "
                "with the candidates"
            ),
        )
    )
