"""docs/adapter.md's "first hour", run command by command: every ```sh block of that section,
in order, in one shell, in an empty folder, against the real broker. If the walk-through
stops being true, this fails where a newcomer would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## The first hour"


def walkthrough() -> str:
    text = (ROOT / "docs" / "adapter.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 8, "the walk-through lost its blocks"
    return "\n".join(blocks)


def test_the_first_hour_walkthrough_moves_a_document_and_its_01(
    amqp_url: str, tmp_path: Path
) -> None:
    script = (
        "set -euo pipefail\n"
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"  # never leave processes behind
        + walkthrough()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_")}
    env.update(
        AMQP_URL=amqp_url,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
    )
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the walk-through hung; logs:\n{logs(tmp_path)}")
    assert result.returncode == 0, (
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{logs(tmp_path)}"
    )
    receipt = json.loads((tmp_path / "g22" / "sent" / "first.edxml.receipt.json").read_text())
    assert receipt["document_id"] == "000.00.00.G22,2026/12/01,1/VPCP"
    (entry,) = (tmp_path / "h41" / "inbox").iterdir()
    assert entry.name == receipt["envelope_id"]
    assert "Văn bản đầu tiên" in (entry / "document.edxml").read_text(encoding="utf-8")
    assert list((tmp_path / "g22" / "failed").iterdir()) == []


def logs(root: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in root.glob("*.log")
    )
