"""A broker that accepts the TCP connection and never answers the AMQP handshake (a wedged
node, a port that is not AMQP's): the adapter and the router say so within
``connect_timeout`` instead of waiting on it forever with nothing said."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from pydantic import SecretStr

from adapters import AdapterClient
from backbone.errors import BrokerUnavailableError
from testkit import Deployment
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.cli_process import run_backbone

pytestmark = pytest.mark.broker

G22 = "000.00.00.G22"
SAYS = "cannot reach the broker: no answer within connect_timeout"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes TCP connections (the listen backlog) that nobody ever
    reads from or answers."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        yield int(listening.getsockname()[1])


def at_port(url: str, port: int) -> str:
    """``url`` (its account and password kept) dialling ``port`` on this machine."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


async def test_an_adapter_facing_a_broker_that_never_answers_says_so_within_connect_timeout(
    adapter_deployment: Deployment, silent_port: int
) -> None:
    config = adapter_deployment.config(G22)
    url = at_port(config.amqp_url.get_secret_value(), silent_port)
    config = config.model_copy(update={"amqp_url": SecretStr(url), "connect_timeout": 1.0})
    with pytest.raises(BrokerUnavailableError) as caught:
        # The bound is the test's, far above the second asked for: without the timeout
        # the start waits here until this fails.
        await asyncio.wait_for(AdapterClient(config).start(), timeout=30)
    assert caught.value.message.startswith(f"adapter {G22} {SAYS}")
    password = urlsplit(url).password
    assert password
    assert password not in caught.value.message


async def test_a_router_facing_a_broker_that_never_answers_refuses_to_start_in_one_line(
    adapter_deployment: Deployment, silent_port: int, tmp_path: Path
) -> None:
    exchange = adapter_deployment.exchange
    url = at_port(exchange.url_for(exchange.account_of(G22)), silent_port)
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "amqp_url": url,
                "connect_timeout": 1,
                "directory": str(adapter_deployment.directory_file),
                "trust_anchors": [str(exchange.pki.ca.cert_path)],
                "crls": [str(exchange.pki.ca.crl_path)],
                "prefix": exchange.names.prefix,
                "store_url": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
            }
        )
    )
    result = await asyncio.to_thread(run_backbone, "router", "run", "--config", str(config))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: [broker_unavailable] the router {SAYS}: the broker did not "
        "accept the connection or never answered the AMQP handshake (a stopped "
        "or wedged node, or a port that is not AMQP's): check the host and port "
        "in amqp_url and the broker's state"
    ], result.stderr[-2000:]
    password = urlsplit(url).password
    assert password
    assert password not in result.stderr
