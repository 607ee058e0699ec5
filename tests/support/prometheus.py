"""A real Prometheus (Debian's ``prometheus`` binary) on loopback for a test: its config
derived from deploy/prometheus/prometheus.yml with local targets, the deployed alert rules on
a compressed clock (a minute of the rules is a second of the test), and its HTTP API.

Without the binary the test fails in CI (``CI=true``; .ci/run installs the package) and is
skipped elsewhere, as tests/test_alerts.py does for promtool."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

__all__ = [
    "DEPLOY",
    "Alertmanager",
    "Prometheus",
    "alertmanager_binary",
    "compressed",
    "local_config",
    "prometheus_binary",
    "with_prefix",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the live Prometheus test needs {name} in CI (.ci/run installs it)")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


def prometheus_binary() -> str:
    return _binary("prometheus", "prometheus")


def alertmanager_binary() -> str:
    return _binary("prometheus-alertmanager", "prometheus-alertmanager")


def _compress(duration: str) -> str:
    """A rule's duration with a minute made a second (at least one second)."""
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration))
    return f"{max(1, seconds // 60)}s"


def with_prefix(expression: str, prefix: str) -> str:
    """Queue names in ``expression`` under the deployment's ``prefix`` instead of ``vdx``
    (what an operator with another prefix does); metric names (``vdx_``) are untouched."""
    return re.sub(r'(?<=")vdx(?=\.|\[\.\])', prefix, expression)


def compressed(rules: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The rules with every ``for:``, range and ``offset`` shortened 60 times (10m -> 10s,
    1h -> 60s) and their queue names under ``prefix``. Thresholds and the arithmetic on
    time() (certificate expiry) are kept as deployed."""
    groups = []
    for group in rules["groups"]:
        changed = []
        for rule in group["rules"]:
            rule = dict(rule)
            expr = re.sub(r"\[(\w+)\]", lambda m: f"[{_compress(m.group(1))}]", rule["expr"])
            expr = re.sub(r"offset (\w+)", lambda m: f"offset {_compress(m.group(1))}", expr)
            rule["expr"] = with_prefix(expr, prefix)
            if "for" in rule:
                rule["for"] = _compress(rule["for"])
            changed.append(rule)
        groups.append({**group, "rules": changed})
    return {"groups": groups}


def local_config(
    targets: dict[str, list[str]],
    rule_file: Path,
    alertmanager: str,
    *,
    interval: str = "1s",
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with ``targets`` per job (every job must be given),
    ``interval`` for scraping and evaluation, ``rule_file``, alerts sent to
    ``alertmanager`` (host:port)."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rule_file)]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert sorted(jobs) == sorted(targets), "a job of prometheus.yml has no local target"
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": targets[name]}]
        job["scrape_timeout"] = interval
    return config


@dataclass
class Prometheus:
    """``prometheus`` started on ``port`` with ``config`` in ``root``; :meth:`stop` ends it."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    http: httpx.AsyncClient = field(init=False)

    def start(self, config: dict[str, Any]) -> None:
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = self.root / "prometheus.log"
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={self.root / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    async def ready(self, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, self.tail()
            try:
                if (await self.http.get("/-/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("Prometheus did not get ready:\n" + self.tail())

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def stop(self) -> None:
        if self.process is None:
            return
        await self.http.aclose()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    async def _get(self, path: str, **params: Any) -> Any:
        answer = (await self.http.get(path, params=params)).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query", query=expr)
        return list(data["result"]) if data["resultType"] in ("vector", "matrix") else [data]

    async def query_range(
        self, expr: str, start: float, end: float, step: float = 1
    ) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    async def now(self) -> float:
        """Prometheus' own time (the test reads no clock of its own)."""
        [sample] = await self.query("time()")
        return float(sample["result"][0])

    async def alerts(self) -> list[dict[str, Any]]:
        return list((await self._get("/api/v1/alerts"))["alerts"])

    async def targets_up(self) -> dict[str, int]:
        """Healthy targets per job."""
        up: dict[str, int] = {}
        for target in (await self._get("/api/v1/targets"))["activeTargets"]:
            up.setdefault(target["labels"]["job"], 0)
            up[target["labels"]["job"]] += target["health"] == "up"
        return up


@dataclass
class Alertmanager:
    """Debian's Alertmanager on ``port`` (no cluster), every alert to one receiver that
    sends nowhere: the test reads what it received through its API."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = {"route": {"receiver": "operators"}, "receivers": [{"name": "operators"}]}
        (self.root / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.log = self.root / "alertmanager.log"
        self.process = subprocess.Popen(
            [
                alertmanager_binary(),
                f"--config.file={self.root / 'alertmanager.yml'}",
                f"--storage.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    async def ready(self, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            assert self.process is not None
            assert self.process.poll() is None, self.tail()
            try:
                if (await self.http.get("/-/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("Alertmanager did not get ready:\n" + self.tail())

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    async def active(self) -> list[dict[str, Any]]:
        """The alerts it has received and holds active now (their labels)."""
        answer = await self.http.get("/api/v2/alerts", params={"active": "true"})
        answer.raise_for_status()
        return [alert["labels"] for alert in answer.json()]

    async def stop(self) -> None:
        if self.process is None:
            return
        await self.http.aclose()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
