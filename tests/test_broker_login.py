"""A refused broker login, or a prefix the broker does not know, is said plainly in one line
at start, and the adapter and the router both refuse to start on it (retrying with the same
password cannot help); an unreachable broker is still waited for by the adapter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from testkit import Deployment
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.adapter_process import AdapterProcess
from tests.support.cli_process import run_backbone

pytestmark = pytest.mark.broker

G22 = "000.00.00.G22"


def adapter_config(deployment: Deployment, **changes: str) -> tuple[Path, dict[str, object]]:
    process = AdapterProcess(deployment, G22, "g22")
    values = yaml.safe_load(process.config_file.read_text())
    values.update(changes)
    process.config_file.write_text(yaml.safe_dump(values))
    return process.config_file, values


def wrong_password(url: str) -> str:
    user_and_password, host = url.removeprefix("amqp://").split("@", 1)
    user = user_and_password.split(":", 1)[0]
    return f"amqp://{user}:not-the-password@{host}"


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # Logs go to stderr too (JSON lines); the error is one line of its own, the last.
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:], result.stderr[-2000:]
    return lines[-1]


async def test_an_adapter_whose_login_is_refused_says_so_and_does_not_start(
    adapter_deployment: Deployment,
) -> None:
    config, values = adapter_config(adapter_deployment)
    url = wrong_password(str(values["amqp_url"]))
    config.write_text(yaml.safe_dump({**values, "amqp_url": url}))
    line = the_error_line(run_backbone("adapter", "run", "--config", str(config)))
    assert line.startswith("error: [broker_login_refused] adapter 000.00.00.G22: the broker ")
    assert "check the password in amqp_url" in line
    assert "not-the-password" not in line


async def test_a_router_whose_login_is_refused_says_the_same(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    exchange = adapter_deployment.exchange
    account = exchange.account_of(G22)
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "amqp_url": wrong_password(exchange.url_for(account)),
                "directory": str(adapter_deployment.directory_file),
                "trust_anchors": [str(exchange.pki.ca.cert_path)],
                "crls": [str(exchange.pki.ca.crl_path)],
                "prefix": exchange.names.prefix,
                "store_url": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
            }
        )
    )
    line = the_error_line(run_backbone("router", "run", "--config", str(config)))
    assert line.startswith("error: [broker_login_refused] the router: the broker refused")
    assert "not-the-password" not in line


async def test_an_adapter_with_a_prefix_the_broker_does_not_know_names_the_key(
    adapter_deployment: Deployment,
) -> None:
    config, _ = adapter_config(adapter_deployment, prefix="nosuchprefix")
    line = the_error_line(run_backbone("adapter", "run", "--config", str(config)))
    assert line.startswith("error: [broker_topology_missing] adapter 000.00.00.G22: ")
    assert "'nosuchprefix.submit'" in line
    assert "set `prefix` to the router's" in line
