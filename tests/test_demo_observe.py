"""``backbone demo --observe`` as an operator runs it: a real process, the URL of its real
Prometheus read from its output, and through Prometheus' HTTP API the demo's router and
adapters (``vdx_`` series) and RabbitMQ's own endpoint (``rabbitmq_`` series, the demo's
queues among them) scraped, the routed count still growing after the demo (documents keep
flowing); then Ctrl-C (SIGINT): exit 0, Prometheus gone, its temporary folder gone."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli_process import start_backbone
from tests.support.prometheus import prometheus_binary

pytestmark = pytest.mark.broker

_URL = re.compile(r"Prometheus at (http://127\.0\.0\.1:\d+)")
_ROOT = re.compile(r"logs and configuration: (/\S+) \(removed")
_PREFIX = re.compile(r"broker names prefixed (demo-[0-9a-f]+)\.")


async def _printed(pattern: re.Pattern[str], process: subprocess.Popen[bytes], output: Path) -> str:
    """The first group of ``pattern`` once the demo has printed it."""
    deadline = asyncio.get_running_loop().time() + 180
    while (found := pattern.search(output.read_text(errors="replace"))) is None:
        assert process.poll() is None, output.read_text(errors="replace")
        assert asyncio.get_running_loop().time() < deadline, output.read_text(errors="replace")
        await asyncio.sleep(0.5)
    return found[1]


async def _value(http: httpx.AsyncClient, expr: str) -> float | None:
    """The single value of ``expr`` in Prometheus now; None while it has no data."""
    answer = (await http.get("/api/v1/query", params={"query": expr})).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def _until(http: httpx.AsyncClient, expr: str, above: float, output: Path) -> float:
    """Until ``expr`` has a value above ``above`` (Prometheus scrapes every 5 s)."""
    deadline = asyncio.get_running_loop().time() + 90
    while (value := await _value(http, expr)) is None or value <= above:
        assert asyncio.get_running_loop().time() < deadline, (expr, value, output.read_text())
        await asyncio.sleep(1)
    return value


def _running(path: str) -> list[int]:
    """Processes whose command line names ``path`` (Prometheus' files are under it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if path in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


async def test_demo_observe_shows_the_live_figures_in_prometheus_until_ctrl_c_then_cleans_up(
    amqp_url: str, tmp_path: Path
) -> None:
    assert prometheus_binary()
    output = tmp_path / "demo.out"
    process = start_backbone("demo", "--observe", output=output, AMQP_URL=amqp_url)
    try:
        url = await _printed(_URL, process, output)
        root = await _printed(_ROOT, process, output)
        prefix = await _printed(_PREFIX, process, output)
        assert f"{url}/alerts" in output.read_text()
        assert _running(root), "no Prometheus with its files in the demo's folder"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            routed = await _until(http, "sum(vdx_envelopes_routed_total)", 0, output)
            adapters = (
                'count(count by (instance) ({job="vdx-adapter", __name__=~"vdx_adapter_.+"}))'
            )
            assert await _until(http, adapters, 3, output) == 4  # every adapter scraped
            await _until(http, "count(rabbitmq_identity_info)", 0, output)
            queues = f'count(rabbitmq_detailed_queue_messages{{queue=~"{prefix}[.].+"}})'
            await _until(http, queues, 0, output)
            # After the demo's three documents, the rounds keep the figures moving.
            await _until(http, "sum(vdx_envelopes_routed_total)", routed, output)
            await _printed(re.compile(r"(round 1): 3 documents"), process, output)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, output.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.read_text()
    assert "cleaned up: 5 broker users" in text, text
    assert _running(root) == []
    assert not Path(root).exists()
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            await http.get("/-/ready")


def test_demo_observe_without_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    assert shutil.which("prometheus", path=str(empty)) is None
    done = subprocess.run(
        [sys.executable, "-m", "backbone", "demo", "--observe"],
        capture_output=True,
        text=True,
        env={"PATH": str(empty), "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr == "error: --observe: prometheus is not installed: apt-get install prometheus\n"
    )
    assert done.stdout == ""
