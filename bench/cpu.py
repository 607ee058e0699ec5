"""CPU time of the broker and of benchmark processes, from /proc.

On a 2-core machine the broker and the router share the cores, so a rate alone does not say
what limits it; CPU time per message does, and it is steadier than rates when other work runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def cpu_us(operation: Callable[[], object], count: int) -> float:
    """CPU µs per call of ``operation`` (this process, every thread), over ``count`` calls."""
    started = time.process_time()
    for _ in range(count):
        operation()
    return 1e6 * (time.process_time() - started) / count


def local_broker_pid() -> int | None:
    """The OS pid of the local RabbitMQ node (``rabbitmqctl eval``), or None when the broker
    is not a local node this user can ask."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        answer = subprocess.run(
            [ctl, "eval", "os:getpid()."], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = answer.stdout.strip().strip('"')
    if answer.returncode != 0 or not text.isdigit() or not Path(f"/proc/{text}").exists():
        return None
    return int(text)


class CpuMeter:
    """CPU seconds a process spends between :meth:`start` and :meth:`stop` (None when the
    process cannot be watched)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._started: float | None = None
        self.seconds: float | None = None

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> float | None:
        now = self._now()
        if now is not None and self._started is not None:
            self.seconds = now - self._started
        return self.seconds

    def _now(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return process_cpu_seconds(self.pid)
        except OSError:
            return None

    def per_message_us(self, messages: int) -> int | None:
        return None if self.seconds is None else round(1e6 * self.seconds / messages)


def started_meters(**pids: int | None) -> dict[str, CpuMeter]:
    """A started :class:`CpuMeter` for each named process."""
    meters = {name: CpuMeter(pid) for name, pid in pids.items()}
    for meter in meters.values():
        meter.start()
    return meters
