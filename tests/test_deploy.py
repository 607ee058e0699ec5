"""The deployment in deploy/ is consistent with the code, checked without Docker: files parse,
the compose stack has the promised services, every metric the alerts and the dashboard use
exists, config files validate against the real models, scrape targets are compose services."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY

import backbone.observability.metrics  # noqa: F401  (registers every vdx_ metric)
from adapters.config import AdapterConfig
from backbone.broker.bounds import BrokerBounds
from backbone.directory import load_directory
from backbone.replica import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ROUTER_CONFIG = DEPLOY / "config" / "router.yaml"
ADAPTER_CONFIGS = sorted((DEPLOY / "config").glob("adapter-*.yaml"))
DIRECTORY = DEPLOY / "config" / "directory.yaml"
BOUNDS = DEPLOY / "config" / "broker-bounds.yaml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))

# RabbitMQ metrics the alerts and dashboards may use, as the rabbitmq_prometheus plugin
# documents them (deps/rabbitmq_prometheus/metrics.md and metrics-detailed.md).
RABBITMQ_METRICS = {
    # GET :15692/metrics (aggregated, per node)
    "rabbitmq_identity_info",
    "rabbitmq_build_info",
    "rabbitmq_connections",
    "rabbitmq_queues",
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_file_descriptor_limit",
    # GET :15692/metrics/detailed?family=queue_coarse_metrics
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    # GET :15692/metrics/detailed?family=queue_consumer_count
    "rabbitmq_detailed_queue_consumers",
}
# The families prometheus.yml must request for the rabbitmq_detailed_* metrics above.
DETAILED_FAMILIES = {"queue_coarse_metrics", "queue_consumer_count"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VDX = re.compile(r"\b(vdx_[a-z0-9_]+)")
_RABBITMQ = re.compile(r"\b(rabbitmq_[a-z0-9_]+)")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _exported_vdx_names() -> set[str]:
    """Sample names prometheus_client exposes for every registered vdx_ metric."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("vdx_"):
            continue
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count", ""),
            "info": ("_info",),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


def _metric_names(expression: str, pattern: re.Pattern[str]) -> set[str]:
    """Metric names in a PromQL expression (string literals, e.g. regexes, removed)."""
    return set(pattern.findall(_STRING.sub('""', expression)))


def _alert_expressions() -> list[str]:
    rules = _yaml(DEPLOY / "prometheus" / "alerts.yml")
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    expressions = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            expressions += [target["expr"] for target in panel.get("targets", [])]
    return expressions


def _services() -> dict[str, Any]:
    return dict(_yaml(COMPOSE)["services"])


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _mounted_file(service: dict[str, Any], target: str) -> Path:
    """The deploy/ file a service bind-mounts at ``target``."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target and source.startswith("./"):
            return DEPLOY / source
    raise AssertionError(f"nothing is mounted at {target}")


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def _config_argument(service: dict[str, Any]) -> str:
    command = _command(service)
    return command[command.index("--config") + 1]


def _services_running(*words: str) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services().items()
        if _command(service)[: len(words)] == list(words)
    }


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _targets(job: dict[str, Any]) -> list[tuple[str, int]]:
    pairs = []
    for static in job["static_configs"]:
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            pairs.append((host, int(port)))
    return pairs


# -- files parse ---------------------------------------------------------------------------


def test_every_yaml_and_json_file_under_deploy_parses() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml", ".json"}]
    assert len(files) >= 10
    for path in files:
        if path.suffix == ".json":
            assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict), path
        else:
            assert isinstance(_yaml(path), dict), path


def test_shell_scripts_are_valid_posix_sh() -> None:
    for script in (DEPLOY / "init.sh", DEPLOY / "entrypoint.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)
        assert os.access(script, os.X_OK), f"{script} is not executable"


# -- the compose stack ------------------------------------------------------------------------


def test_compose_runs_a_three_node_rabbitmq_cluster_with_one_cookie() -> None:
    nodes = {
        name: s for name, s in _services().items() if s.get("image", "").startswith("rabbitmq:")
    }
    assert sorted(nodes) == ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
    cookies = {_environment(node)["VDX_ERLANG_COOKIE"] for node in nodes.values()}
    assert len(cookies) == 1
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    for name, node in nodes.items():
        assert node["hostname"] == name
        assert _environment(node)["RABBITMQ_NODENAME"] == f"rabbit@{name}"
        assert f"= rabbit@{name}\n" in conf  # listed for classic peer discovery
        assert _mounted_file(node, "/etc/rabbitmq/rabbitmq.conf").name == "rabbitmq.conf"
        assert _mounted_file(node, "/etc/rabbitmq/enabled_plugins").name == "enabled_plugins"
        assert any(str(v).endswith(":/etc/rabbitmq/definitions:ro") for v in node["volumes"])
        assert "await_online_nodes 3" in " ".join(node["healthcheck"]["test"])
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert "definitions.local.path = /etc/rabbitmq/definitions/definitions.json" in conf
    assert "quorum_queue.initial_cluster_size = 3" in conf
    assert "\nchannel_max = 128\n" in conf  # per connection; accounts' totals are user limits
    assert "rabbitmq_prometheus" in (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()


def test_compose_has_postgres_two_routers_adapters_prometheus_grafana_and_init() -> None:
    services = _services()
    assert services["postgres"]["image"] == "postgres:15"
    assert len(_services_running("backbone", "router", "run")) == 2
    assert len(_services_running("backbone", "adapter", "run")) == 2
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    assert _command(services["init"]) == ["vdx-init"]
    for name, service in services.items():
        if name != "init" and service.get("build"):
            assert service["depends_on"], name
    for name in ("rabbitmq-1", "router-1", "router-2"):
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name


def test_routers_share_one_postgresql_store_and_wait_for_the_whole_cluster() -> None:
    routers = _services_running("backbone", "router", "run")
    store_urls = set()
    for name, router in routers.items():
        assert _config_argument(router) == "/etc/vdx/router.yaml"
        config = _yaml(_mounted_file(router, "/etc/vdx/router.yaml"))
        store_urls.add(_environment(router).get("VDX_STORE_URL", config["store_url"]))
        for node in ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "postgres"):
            assert router["depends_on"][node]["condition"] == "service_healthy", (name, node)
    assert len(store_urls) == 1
    url = urlsplit(store_urls.pop())
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "postgres"
    postgres = _environment(_services()["postgres"])
    assert (url.username, url.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_the_dockerfile_installs_the_project_and_compose_builds_from_the_repository_root() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install \.", dockerfile, re.MULTILINE)
    for path in ("pyproject.toml", "backbone", "adapters", "schemas"):
        assert re.search(rf"^COPY .*\b{path}\b", dockerfile, re.MULTILINE), path
    build = _services()["router-1"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )


# -- configuration files against the real models -------------------------------------------


def test_router_config_validates_against_settings() -> None:
    settings = Settings(**_yaml(ROUTER_CONFIG))
    assert settings.http_port is not None
    assert settings.store_url.startswith("postgresql+asyncpg://")
    assert settings.directory == Path("/etc/vdx/directory.yaml")


def test_adapter_configs_validate_and_fit_the_sample_directory() -> None:
    directory = load_directory(DIRECTORY)
    assert len(ADAPTER_CONFIGS) == 2
    systems = set()
    for path in ADAPTER_CONFIGS:
        config = AdapterConfig(**_yaml(path))
        assert config.http_port is not None, path
        for agency in config.agencies:
            assert directory.serving_system(agency.organ_code).system_id == config.system
        systems.add(config.system)
        # amqp_url names the system's own account (the password is added at start)
        served_by = directory.serving_system(config.agencies[0].organ_code)
        assert served_by.broker_account == config.broker_account, path
    # one direct agency (an organ code) and one hub (an id ending in W00)
    assert {len(system.split(".")) for system in systems} == {3, 4}


def test_adapter_services_use_their_config_and_broker_account() -> None:
    for name, service in _services_running("backbone", "adapter", "run").items():
        config = AdapterConfig(**_yaml(_mounted_file(service, _config_argument(service))))
        environment = _environment(service)
        assert environment["VDX_BROKER_USER"] == config.broker_account, name
        assert (
            environment["VDX_BROKER_HOST"] == urlsplit(config.amqp_url.get_secret_value()).hostname
        )


def test_the_deployed_broker_bounds_are_the_documented_defaults() -> None:
    """deploy/config/broker-bounds.yaml spells out the defaults, so the file and the code
    cannot drift apart unnoticed."""
    assert BrokerBounds.load(BOUNDS) == BrokerBounds()
    # Every key spelled out (an absent age bound may be left out).
    spelled_out = yaml.safe_load(BOUNDS.read_text())
    assert BrokerBounds.load(BOUNDS).model_dump(exclude_none=True) == spelled_out
    assert _mounted_file(_services()["init"], "/etc/vdx/broker-bounds.yaml") == BOUNDS


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_init_script_creates_pki_and_definitions_the_configs_resolve_with(tmp_path: Path) -> None:
    """init.sh really runs: the development PKI, passwords and definitions it writes let
    each adapter config resolve (keys match certificates, accounts match the directory)."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", VDX_STATE_DIR=str(tmp_path))
    env |= {"VDX_DIRECTORY": str(DIRECTORY), "VDX_CHOWN": "0", "VDX_BROKER_BOUNDS": str(BOUNDS)}
    subprocess.run(["sh", str(DEPLOY / "init.sh")], check=True, env=env, capture_output=True)
    definitions = json.loads((tmp_path / "broker" / "definitions.json").read_text())
    assert [vhost["name"] for vhost in definitions["vhosts"]] == ["/"]
    users = {user["name"]: user for user in definitions["users"]}
    assert {"vdx-router", "agency-000.00.00.G22", "hub-00.53.W00", "vdx-admin"} <= set(users)
    # Every account the directory gives gets its connection and channel limits.
    bounds = BrokerBounds.load(BOUNDS)
    assert users["agency-000.00.00.G22"]["limits"] == bounds.agency.definition()
    assert users["hub-00.53.W00"]["limits"] == bounds.hub.definition()
    assert users["vdx-router"]["limits"] == bounds.router.definition()
    policies = {policy["name"] for policy in definitions["policies"]}
    assert policies == {"vdx-quarantine", "vdx-events", "vdx-events-operators", "vdx-inboxes"}
    for path in ADAPTER_CONFIGS:
        text = path.read_text().replace("/var/lib/vdx", str(tmp_path))
        config = AdapterConfig(**yaml.safe_load(text))
        resolved = config.model_copy(update={"directory": DIRECTORY}).resolve()
        assert set(resolved.agencies) == {agency.organ_code for agency in config.agencies}


def test_entrypoint_builds_the_broker_url_from_the_provisioned_password(tmp_path: Path) -> None:
    passwords = tmp_path / "passwords.yaml"
    passwords.write_text(yaml.safe_dump({"hub-00.53.W00": "p@ss/word"}))
    env = dict(os.environ, VDX_BROKER_USER="hub-00.53.W00", VDX_BROKER_HOST="rabbitmq-2")
    env |= {
        "VDX_BROKER_PASSWORDS": str(passwords),
        "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
    }
    env.pop("VDX_AMQP_URL", None)
    shown = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), "sh", "-c", 'printf %s "$VDX_AMQP_URL"'],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert shown == "amqp://hub-00.53.W00:p%40ss%2Fword@rabbitmq-2:5672/"


# -- metrics ----------------------------------------------------------------------------------


def test_every_vdx_metric_in_alerts_and_dashboards_is_exported_by_the_code() -> None:
    exported = _exported_vdx_names()
    used = {
        name
        for expression in _alert_expressions() + _dashboard_expressions()
        for name in _metric_names(expression, _VDX)
    }
    assert used, "no vdx_ metric found: the regex or the files are wrong"
    assert used <= exported, sorted(used - exported)


def test_every_rabbitmq_metric_used_is_a_documented_plugin_metric() -> None:
    used = {
        name
        for expression in _alert_expressions() + _dashboard_expressions()
        for name in _metric_names(expression, _RABBITMQ)
    }
    assert "rabbitmq_detailed_queue_messages_ready" in used
    assert used <= RABBITMQ_METRICS, sorted(used - RABBITMQ_METRICS)
    detailed = [
        job for job in _scrape_jobs().values() if job.get("metrics_path") == "/metrics/detailed"
    ]
    assert detailed
    assert set(detailed[0]["params"]["family"]) == DETAILED_FAMILIES


def test_alerts_cover_the_promised_conditions() -> None:
    expressions = "\n".join(_alert_expressions())
    for needle in (
        'up{job="vdx-router"} == 0',
        "vdx_envelopes_rejected_total",
        "vdx_unroutable_total",
        "vdx_dead_lettered_total",
        'rabbitmq_detailed_queue_messages_ready{queue=~"vdx[.]inbox[.].+"}',
        'rabbitmq_detailed_queue_messages_ready{queue=~"vdx[.]events[.].+",queue!="vdx.events.operators"}',
        "vdx_certificate_not_after_timestamp_seconds - time() < 14 * 86400",
        "vdx_adapter_send_failures_total",
    ):
        assert needle in expressions, needle


def test_dashboard_shows_tiers_rejections_latency_queues_adapters_and_in_flight() -> None:
    expressions = "\n".join(_dashboard_expressions())
    for needle in (
        "sum by (tier, kind) (rate(vdx_envelopes_routed_total",
        "sum by (tier) (rate(vdx_deliveries_total",
        "sum by (reason) (rate(vdx_envelopes_rejected_total",
        "histogram_quantile(0.95, sum by (le) (rate(vdx_end_to_end_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(vdx_validation_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(vdx_routing_seconds_bucket",
        "rabbitmq_detailed_queue_messages_ready",
        "vdx_adapter_sent_total",
        "vdx_adapter_received_total",
        "vdx_adapter_send_failures_total",
        "vdx_in_flight_messages",
    ):
        assert needle in expressions, needle


def test_grafana_provisions_the_prometheus_datasource_the_dashboard_uses() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"][0]
    assert urlsplit(datasource["url"]).hostname == "prometheus"
    provider = _yaml(provisioning / "dashboards" / "vdx.yaml")["providers"][0]
    grafana = _services()["grafana"]
    assert any(v.endswith(":" + provider["options"]["path"] + ":ro") for v in grafana["volumes"])
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


# -- scrape targets ---------------------------------------------------------------------------


def test_scrape_targets_are_compose_services_on_their_metrics_ports() -> None:
    services = _services()
    jobs = _scrape_jobs()
    routers = _services_running("backbone", "router", "run")
    adapters = _services_running("backbone", "adapter", "run")
    router = Settings(**_yaml(ROUTER_CONFIG))
    router_port = router.http_port
    # Scraped over the compose network: each scraped process says so explicitly (the
    # default, loopback, would leave Prometheus nothing to scrape).
    assert router.http_host == "0.0.0.0"
    assert sorted(_targets(jobs["vdx-router"])) == sorted((name, router_port) for name in routers)
    expected_adapters = []
    for name, service in adapters.items():
        config = AdapterConfig(**_yaml(_mounted_file(service, _config_argument(service))))
        assert config.http_host == "0.0.0.0", name
        expected_adapters.append((name, config.http_port))
    assert sorted(_targets(jobs["vdx-adapter"])) == sorted(expected_adapters)
    nodes = [(name, 15692) for name in ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")]
    for job_name in ("rabbitmq", "rabbitmq-queues"):
        assert sorted(_targets(jobs[job_name])) == nodes
    for job in jobs.values():
        for host, _ in _targets(job):
            assert host in services or host == "localhost", host
    prometheus = services["prometheus"]
    assert _mounted_file(prometheus, "/etc/prometheus/alerts.yml").name == "alerts.yml"
