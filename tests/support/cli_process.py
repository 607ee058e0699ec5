"""``python -m backbone …`` as a real process, as an operator runs it: only its arguments and
files speak (no ``VDX_*`` or ``AMQP_URL`` of the test environment), this checkout first on
the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["run_backbone"]

ROOT = Path(__file__).resolve().parents[2]


def run_backbone(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "backbone", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
