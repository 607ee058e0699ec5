"""``backbone demo`` end to end on the real broker, as ``make demo`` runs it: real router
and adapter processes, every recipient to status 06, and nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from backbone.devtools.demo import headline_numbers, management_client
from backbone.devtools.demo.scenario import LETTERS
from tests.conftest import REPO


def _demo(amqp_url: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_")}
    env |= {"AMQP_URL": amqp_url, **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "backbone", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.broker
async def test_demo_brings_every_recipient_to_06_shows_the_metrics_and_leaves_nothing_behind(
    amqp_url: str,
) -> None:
    done = _demo(amqp_url)

    output = done.stdout
    assert done.returncode == 0, output[-4000:] + done.stderr[-4000:]
    for letter in LETTERS:
        for recipient in letter.recipients:
            # The demo dates its letters by its own clock (Vietnam's day), which may have
            # passed midnight there since this test read LETTERS: any day, the rest exact.
            sender, _, number = letter.document_id.split(",")
            done_line = rf"{re.escape(sender)},\d{{4}}/\d{{2}}/\d{{2}},{re.escape(number)}"
            done_line += re.escape(f" → {recipient}: 06 done")
            assert re.search(done_line, output), output
    assert "every recipient reached status 06" in output
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", output), output
    pairs = sum(len(letter.recipients) for letter in LETTERS)
    assert f"statuses relayed by code: 01 {pairs}, 03 {pairs}, 04 {pairs}" in output, output
    assert f"envelopes routed: document {len(LETTERS)}, status {5 * pairs}" in output, output

    prefix = re.search(r"broker names prefixed (demo-[0-9a-f]+)\.", output)
    assert prefix is not None, output
    management = management_client(amqp_url)
    assert await management.queue_names(prefix=f"{prefix[1]}.") == []
    assert await management.exchange_names(prefix=f"{prefix[1]}.") == []
    direct = ("000.00.00.G22", "000.00.00.G04", "000.00.00.H41")
    for user in ["router", "hub", *(f"agency-{code}" for code in direct)]:
        assert not await management.delete_user(f"{prefix[1]}-{user}"), f"{user} was left"


@pytest.mark.broker
def test_demo_without_a_management_api_says_so_and_fails(amqp_url: str) -> None:
    done = _demo(amqp_url, VDX_MANAGEMENT_URL="http://127.0.0.1:9")

    assert done.returncode == 1
    assert "management API" in done.stdout
    assert "http://127.0.0.1:9 is unreachable" in done.stdout


def test_headline_numbers_sum_the_routers_counters_by_kind_code_and_tier() -> None:
    metrics = "\n".join(
        [
            "# TYPE vdx_envelopes_routed_total counter",
            'vdx_envelopes_routed_total{kind="document",tier="commune"} 1.0',
            'vdx_envelopes_routed_total{kind="document",tier="central-provincial"} 2.0',
            'vdx_envelopes_routed_total{kind="status",tier="unit"} 5.0',
            "# TYPE vdx_statuses_total counter",
            'vdx_statuses_total{code="01"} 3.0',
            "# TYPE vdx_deliveries_total counter",
            'vdx_deliveries_total{tier="unit"} 4.0',
            "# TYPE vdx_routing_seconds histogram",
            "vdx_routing_seconds_count 4.0",
            "vdx_routing_seconds_sum 0.2",
            "",
        ]
    )

    assert headline_numbers(metrics) == [
        "envelopes routed: document 3, status 5",
        "statuses relayed by code: 01 3",
        "deliveries (documents and statuses) by recipient tier: unit 4",
        "rejected: 0; mean routing time 50.0 ms",
    ]
