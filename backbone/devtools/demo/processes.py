"""The router and the adapters as real processes, exactly as operators start them:
``python -m backbone router run --config …`` and ``python -m backbone adapter run --config …``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DemoProcess", "ProcessFailedError", "answers_ok"]

_STOP_SECONDS = 30.0


class ProcessFailedError(Exception):
    """A process exited, or did not become ready, when the demo needed it."""


@dataclass
class DemoProcess:
    """One child process; its JSON log goes to ``log``."""

    name: str
    args: list[str]
    log: Path
    ready_url: str | None = None
    ready_event: str = "adapter.serving"
    # What runs ``args``: this checkout's ``backbone`` command, or another program (Prometheus).
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "backbone"])
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _terminated: bool = field(default=False, repr=False)

    @classmethod
    def router(cls, config: Path, log: Path, port: int) -> DemoProcess:
        args = ["router", "run", "--config", str(config)]
        return cls("router", args, log, ready_url=f"http://127.0.0.1:{port}/readyz")

    @classmethod
    def adapter(
        cls, system: str, config: Path, log: Path, *, ready_event: str = "adapter.serving"
    ) -> DemoProcess:
        """``ready_event``: the log event that says it serves (``gateway.serving``: its
        gateway listens)."""
        args = ["adapter", "run", "--config", str(config), "--poll-interval", "0.1"]
        return cls(f"adapter {system}", args, log, ready_event=ready_event)

    def start(self) -> None:
        # Only the configuration file speaks: AMQP_URL (the administrator's URL the demo
        # found the broker with) or VDX_* would override the process's own broker account.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
        env["VDX_LOG_FORMAT"] = "json"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [*self.program, *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C at the terminal reaches the demo (or the
                # sandbox) alone, which stops the adapters before the router.
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise ProcessFailedError(
                f"the {self.name} process exited with code {self._process.returncode}; "
                f"the end of its log ({self.log}):\n{self.tail()}"
            )

    def terminate(self) -> None:
        """SIGTERM, once, if it runs."""
        if self._process is not None and self._process.poll() is None and not self._terminated:
            self._process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL after 30 s); its exit code, None if it never ran."""
        if self._process is None:
            return None
        self.terminate()
        if self._process.poll() is None:
            try:
                self._process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def wait_ready(self, timeout: float) -> None:
        """Until ``ready_url`` answers 200, or else the log says ``ready_event``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._ready():
            self.check_alive()
            if asyncio.get_running_loop().time() > deadline:
                raise ProcessFailedError(
                    f"the {self.name} process was not ready after {timeout:.0f} s; "
                    f"the end of its log ({self.log}):\n{self.tail()}"
                )
            await asyncio.sleep(0.1)

    async def _ready(self) -> bool:
        if self.ready_url is not None:
            return await asyncio.to_thread(answers_ok, self.ready_url)
        return self.log.exists() and f'"{self.ready_event}"' in self.log.read_text(errors="replace")


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - our own http URL
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError):
        return False
