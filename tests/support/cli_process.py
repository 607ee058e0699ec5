"""``python -m backbone …`` as a real process, as an operator runs it: only its arguments and
files speak (no ``VDX_*`` or ``AMQP_URL`` of the test environment unless given), this
checkout first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["run_backbone", "start_backbone"]

ROOT = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


def run_backbone(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backbone", *args],
        capture_output=True,
        text=True,
        env=_env({}),
        timeout=timeout,
        check=False,
    )


def start_backbone(*args: str, output: Path, **env: str) -> subprocess.Popen[bytes]:
    """In the background, ``env`` added to its environment, its stdout and stderr written to
    ``output``; the caller stops it."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "backbone", *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_env(env),
        )
