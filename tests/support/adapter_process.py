"""Drop-folder adapters as real processes (``backbone adapter run --config FILE``), configured
by a :class:`testkit.Deployment`, and the folder operations agency software does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from testkit import Deployment
from tests.support.child_process import ChildProcess

__all__ = [
    "AdapterProcess",
    "adapter_command",
    "drop",
    "inbox_documents",
    "logged",
    "running",
    "wait_for",
]


class AdapterProcess(ChildProcess):
    """``backbone adapter run --config FILE`` as a child process."""

    def __init__(
        self,
        deployment: Deployment,
        system: str,
        name: str,
        *,
        http_port: int | None = None,
        reconnect_interval: float | None = None,
        settings: Mapping[str, Any] | None = None,
        folders: bool = True,
    ) -> None:
        """``settings``: more keys of its configuration file (the gateway's…); ``folders``
        False: its agencies have no drop folder (a gateway)."""
        config = deployment.config(system)
        # Its own interval only when given: the adapter's default (5 s) otherwise.
        reconnect = {} if reconnect_interval is None else {"reconnect_interval": reconnect_interval}
        self.folder = Path(str(config.agencies[0].folder))
        served: list[dict[str, str]] = [
            {
                "organ_code": a.organ_code,
                "key": str(a.key),
                "certificate": str(a.certificate),
                **({"folder": str(a.folder)} if folders else {}),
            }
            for a in config.agencies
        ]
        self.config_file = deployment.root / f"{name}.yaml"
        self.config_file.write_text(
            yaml.safe_dump(
                {
                    "amqp_url": config.amqp_url.get_secret_value(),
                    "system": config.system,
                    "prefix": config.prefix,
                    "directory": str(config.directory),
                    "trust_anchors": [str(p) for p in config.trust_anchors],
                    "crls": [str(p) for p in config.crls],
                    "prefetch": config.prefetch,
                    "max_envelope_bytes": config.max_envelope_bytes,
                    "http_port": http_port,
                    **reconnect,
                    "agencies": served,
                    **(settings or {}),
                }
            )
        )
        self.log = deployment.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Only the config file speaks: a bare AMQP_URL (the test broker's admin URL) would
        # otherwise replace the system's own account (adapters/config.py reads it too).
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDX_") and k != "AMQP_URL"}
        env["VDX_LOG_FORMAT"] = "json"
        self.process = subprocess.Popen(
            [*adapter_command(), "run", "--config", str(self.config_file), "--poll-interval=0.1"],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def peak_rss(self) -> int:
        """The process's peak resident set so far (VmHWM), in bytes."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmHWM for process {self.process.pid}")

    async def serving(self) -> None:
        await wait_for(lambda: logged(self.log, "adapter.serving"), 60, f"{self.log.stem}")


def adapter_command() -> list[str]:
    """``python -m backbone adapter`` once the lead has wired it, else the module's app."""
    from backbone.cli import app as backbone_app

    if any(group.name == "adapter" for group in backbone_app.registered_groups):
        return [sys.executable, "-m", "backbone", "adapter"]
    return [sys.executable, "-c", "from adapters.cli import app; app()"]


@contextmanager
def running(*processes: AdapterProcess) -> Iterator[None]:
    for process in processes:
        process.start()
    try:
        yield
    finally:
        for process in processes:
            code = process.stop()
            assert code in (0, None), process.tail()


async def logged(log: Path, event: str) -> bool:
    return log.exists() and f'"{event}"' in log.read_text(errors="replace")


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def drop(folder: Path, name: str, data: bytes) -> None:
    """Write as agency software must: a temp name, then a rename into outbox/."""
    outbox = folder / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f"{name}.tmp").write_bytes(data)
    os.replace(outbox / f"{name}.tmp", outbox / name)


def inbox_documents(folder: Path) -> list[str]:
    """The DocumentId of every complete entry in inbox/."""
    inbox = folder / "inbox"
    if not inbox.is_dir():
        return []
    return [
        json.loads((entry / "metadata.json").read_text())["document_id"]
        for entry in inbox.iterdir()
    ]
