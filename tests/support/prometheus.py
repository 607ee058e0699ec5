"""A real Prometheus (Debian's ``prometheus`` binary) and Alertmanager on loopback for a test,
started as ``backbone demo --observe`` starts them (backbone/devtools/demo/observe.py: config
derived from deploy/prometheus/prometheus.yml with local targets); here the deployed alert
rules run on a compressed clock (a minute of the rules is a second of the test), and the
servers' HTTP APIs are read.

Without the binary the test fails in CI (``CI=true``; .ci/run installs the package) and is
skipped elsewhere, as tests/test_alerts.py does for promtool."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.devtools.demo.observe import (
    ALERTMANAGER,
    DEPLOY,
    PROMETHEUS,
    ObserveError,
    Server,
    alertmanager_server,
    deployed_rules,
    installed,
    local_config,
    prometheus_server,
    with_prefix,
)

__all__ = [
    "DEPLOY",
    "Alertmanager",
    "Prometheus",
    "alertmanager_binary",
    "compressed",
    "deployed_rules",
    "local_config",
    "prometheus_binary",
    "with_prefix",
]

_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A threshold compared with an age: a ``_seconds`` gauge (not a ``_timestamp_seconds``, which
# is a date) whose selector, maybe closed in an aggregation, is followed by the comparison.
# The age grows with the test's clock, so its threshold is a duration like ``for:``.
_AGE_THRESHOLD = re.compile(
    r"(?<![a-z_:])(?![a-z_:]*_timestamp_seconds\b)([a-z_:]+_seconds(?:\{[^}]*\})?\)*\s*"
    r"(?:[<>]=?|==|!=)\s*)(\d+(?:\s*\*\s*\d+)*)"
)


def _binary(name: str, package: str) -> str:
    try:
        return installed(name, package)
    except ObserveError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the live Prometheus test needs {name} in CI (.ci/run installs it)")
        pytest.skip(str(error))


def prometheus_binary() -> str:
    return _binary(*PROMETHEUS)


def alertmanager_binary() -> str:
    return _binary(*ALERTMANAGER)


def _compress(duration: str) -> str:
    """A rule's duration with a minute made a second (at least one second)."""
    seconds = sum(int(n) * _SECONDS[unit] for n, unit in _DURATION.findall(duration))
    return f"{max(1, seconds // 60)}s"


def _compress_age(threshold: str) -> str:
    """An age threshold in seconds (``6 * 3600``) shortened as a duration is (``360``)."""
    seconds = 1
    for factor in threshold.split("*"):
        seconds *= int(factor)
    return str(max(1, seconds // 60))


def compressed(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules with every ``for:``, range and ``offset`` shortened 60 times (10m -> 10s,
    1h -> 60s), and so is a threshold on an age gauge (``vdx_..._seconds > 6 * 3600`` ->
    ``> 360``): an age counts the test's seconds. Other thresholds and the arithmetic on
    time() (certificate expiry, against a timestamp) are kept as deployed."""
    groups = []
    for group in rules["groups"]:
        changed = []
        for rule in group["rules"]:
            rule = dict(rule)
            expr = re.sub(r"\[(\w+)\]", lambda m: f"[{_compress(m.group(1))}]", rule["expr"])
            expr = re.sub(r"offset (\w+)", lambda m: f"offset {_compress(m.group(1))}", expr)
            expr = _AGE_THRESHOLD.sub(lambda m: m.group(1) + _compress_age(m.group(2)), expr)
            rule["expr"] = expr
            if "for" in rule:
                rule["for"] = _compress(rule["for"])
            changed.append(rule)
        groups.append({**group, "rules": changed})
    return {"groups": groups}


class _Api:
    """A started server and an HTTP client on it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def ready(self, timeout: float = 60) -> None:
        await self.server.ready(timeout)

    def tail(self) -> str:
        return self.server.tail()

    async def stop(self) -> None:
        await self.http.aclose()
        self.server.stop()


class Prometheus(_Api):
    """Prometheus started on ``port`` with ``config`` in ``root``; its HTTP API."""

    def __init__(self, root: Path, port: int, config: dict[str, Any]) -> None:
        server = prometheus_server(root, port, config)
        server.start()
        super().__init__(server)

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


class Alertmanager(_Api):
    """Debian's Alertmanager on ``port``: the test reads what it received through its API."""

    def __init__(self, root: Path, port: int) -> None:
        server = alertmanager_server(root, port)
        server.start()
        super().__init__(server)

    async def active(self) -> list[dict[str, Any]]:
        """The alerts it has received and holds active now (their labels)."""
        answer = await self.http.get("/api/v2/alerts", params={"active": "true"})
        answer.raise_for_status()
        return [alert["labels"] for alert in answer.json()]
