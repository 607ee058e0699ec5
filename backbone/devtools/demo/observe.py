"""A real Prometheus (and Alertmanager) beside local processes: Debian's binaries on loopback,
configured from ``deploy/prometheus/prometheus.yml`` with local targets and the deployed
alert rules. ``backbone demo --observe`` uses it (:func:`start_observing`: the demo's router,
adapters and RabbitMQ's own endpoint scraped every 5 s, the rules as deployed), and so does
the live Prometheus test (tests/support/prometheus.py, on a compressed clock).

The deploy files ship in the wheel as ``backbone/_deploy/prometheus/`` (``pyproject.toml``);
in a checkout they are read from ``deploy/prometheus/``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from backbone.devtools.demo.processes import DemoProcess, answers_ok
from backbone.devtools.demo.world import DemoWorld, free_port

__all__ = [
    "DEPLOY",
    "ObserveError",
    "Server",
    "alertmanager_server",
    "deployed_rules",
    "installed",
    "local_config",
    "prometheus_server",
    "start_observing",
    "with_prefix",
]


def _deploy() -> Path:
    backbone_dir = Path(__file__).resolve().parents[2]
    installed_copy = backbone_dir / "_deploy"
    return installed_copy if installed_copy.is_dir() else backbone_dir.parent / "deploy"


DEPLOY = _deploy()
RABBITMQ_PROMETHEUS_PORT = 15692  # the rabbitmq_prometheus plugin (`backbone broker ensure`)
INTERVAL = "5s"  # scraping and rule evaluation beside the demo
# A graph to start from: what the router routes, by kind, as it happens.
_GRAPH = "sum by (kind) (rate(vdx_envelopes_routed_total[1m]))"
PROMETHEUS = ("prometheus", "prometheus")  # (binary, Debian package)
ALERTMANAGER = ("prometheus-alertmanager", "prometheus-alertmanager")


class ObserveError(Exception):
    """A binary is missing or a server did not start; the message says what to do."""


def installed(binary: str, package: str) -> str:
    """The path of ``binary``; :class:`ObserveError` naming the package when it is missing."""
    found = shutil.which(binary)
    if found is None:
        raise ObserveError(f"{binary} is not installed: apt-get install {package}")
    return found


def with_prefix(expression: str, prefix: str) -> str:
    """Queue names in ``expression`` under the deployment's ``prefix`` instead of ``vdx``
    (what an operator with another prefix does); metric names (``vdx_``) are untouched."""
    return re.sub(r'(?<=")vdx(?=\.|\[\.\])', prefix, expression)


def deployed_rules(prefix: str) -> dict[str, Any]:
    """deploy/prometheus/alerts.yml with its queue names under ``prefix``."""
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = with_prefix(rule["expr"], prefix)
    return rules


def local_config(
    targets: dict[str, list[str]],
    rule_file: Path,
    alertmanager: str | None,
    *,
    interval: str = "1s",
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with ``targets`` per job (every job must be given),
    ``interval`` for scraping and evaluation, ``rule_file``, alerts sent to
    ``alertmanager`` (host:port) when there is one."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rule_file)]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if sorted(jobs) != sorted(targets):
        raise ValueError(f"targets for jobs {sorted(targets)}; prometheus.yml has {sorted(jobs)}")
    for name, job in jobs.items():
        job["static_configs"] = [{"targets": targets[name]}]
        job["scrape_timeout"] = interval
    return config


@dataclass
class Server:
    """One of Prometheus' family on ``127.0.0.1:port``, its files (configuration, data, log)
    in ``root``; :meth:`stop` ends it."""

    name: str
    root: Path
    port: int
    process: DemoProcess = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def _configure(self, binary: str, config: dict[str, Any], args: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f"{self.name}.yml").write_text(yaml.safe_dump(config))
        self.process = DemoProcess(
            self.name,
            [f"--config.file={self.root / f'{self.name}.yml'}", *args],
            self.log,
            ready_url=f"{self.url}/-/ready",
            program=[binary],
        )

    def start(self) -> None:
        self.process.start()

    async def ready(self, timeout: float = 60) -> None:
        await self.process.wait_ready(timeout)

    def tail(self) -> str:
        return self.process.tail(40)

    def stop(self) -> int | None:
        return self.process.stop()


def prometheus_server(root: Path, port: int, config: dict[str, Any]) -> Server:
    """Prometheus with ``config`` (see :func:`local_config`), not started yet."""
    binary = installed(*PROMETHEUS)
    server = Server("prometheus", root, port)
    server._configure(
        binary,
        config,
        [f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
    )
    return server


def alertmanager_server(root: Path, port: int) -> Server:
    """Alertmanager (no cluster) with every alert to one receiver that sends nowhere: what it
    received is read through its API and web page. Not started yet."""
    binary = installed(*ALERTMANAGER)
    server = Server("alertmanager", root, port)
    server._configure(
        binary,
        {"route": {"receiver": "operators"}, "receivers": [{"name": "operators"}]},
        [
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    )
    return server


async def start_observing(
    console: Console, world: DemoWorld, adapter_ports: list[int], servers: list[Server]
) -> None:
    """Prometheus scraping ``world``'s router, its adapters (on ``adapter_ports``) and the
    broker's own endpoint, with the deployed rules, and Alertmanager when it is installed;
    started (added to ``servers``, which the caller stops), ready, and their URLs printed."""
    root = world.root / "observe"
    host = urllib.parse.urlsplit(world.amqp_url).hostname or "127.0.0.1"
    rabbitmq = f"{host}:{RABBITMQ_PROMETHEUS_PORT}"
    rules = root / "alerts.yml"
    root.mkdir(parents=True, exist_ok=True)
    rules.write_text(yaml.safe_dump(deployed_rules(world.prefix), allow_unicode=True))
    try:
        alertmanager: Server | None = alertmanager_server(root / "alertmanager", free_port())
    except ObserveError as error:
        alertmanager = None
        console.print(f"  [yellow]no Alertmanager ({error}): alerts show on Prometheus' page[/]")
    port = free_port()
    targets = {
        "prometheus": [f"127.0.0.1:{port}"],
        "vdx-router": [f"127.0.0.1:{world.router_port}"],
        "vdx-adapter": [f"127.0.0.1:{adapter}" for adapter in adapter_ports],
        "rabbitmq": [rabbitmq],
        "rabbitmq-queues": [rabbitmq],
    }
    am = None if alertmanager is None else f"127.0.0.1:{alertmanager.port}"
    config = local_config(targets, rules, am, interval=INTERVAL)
    prometheus = prometheus_server(root / "prometheus", port, config)
    for server in (prometheus, alertmanager):
        if server is not None:
            servers.append(server)
            server.start()
    for server in servers:
        await server.ready()
    graph = urllib.parse.urlencode({"g0.expr": _GRAPH, "g0.tab": "0", "g0.range_input": "15m"})
    console.print(f"  ✓ Prometheus at {prometheus.url} (every {INTERVAL}; deploy/prometheus rules)")
    console.print(f"      targets: {prometheus.url}/targets")
    console.print(f"      alerts:  {prometheus.url}/alerts")
    console.print(f"      graph:   {prometheus.url}/graph?{graph}")
    if alertmanager is not None:
        console.print(f"  ✓ Alertmanager at {alertmanager.url}")
    if not await asyncio.to_thread(answers_ok, f"http://{rabbitmq}/metrics"):
        console.print(
            f"  [yellow]RabbitMQ's metrics do not answer on {rabbitmq}: enable "
            "rabbitmq_prometheus (`backbone broker ensure --plugins`)[/]"
        )
