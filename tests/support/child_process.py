"""A backbone command a test runs as a child process: killed (SIGKILL) or stopped (SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class ChildProcess:
    """Subclasses start ``process``, logging to ``log``."""

    process: subprocess.Popen[bytes] | None
    log: Path

    def kill(self) -> None:
        """SIGKILL: no draining, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, *, timeout: float = 60) -> int | None:
        """SIGTERM and wait: the return code of a graceful stop (None if already gone)."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.log.stem} did not stop on SIGTERM") from None
