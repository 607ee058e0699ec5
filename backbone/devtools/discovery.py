"""Find a RabbitMQ broker to talk to, in a fixed order.

1. ``AMQP_URL`` when set (and then only it: an explicit choice is never second-guessed);
2. the local node on 127.0.0.1:5672;
3. start the local node (``rabbitmq-server -detached``), installing Debian's
   ``rabbitmq-server`` first when allowed and it is missing;
4. a throwaway testcontainers RabbitMQ where a Docker engine answers;
5. otherwise fail with :class:`BrokerUnavailableError`, saying how to get a broker.

Developers, tests and CI all go through here, so every environment finds brokers alike.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from backbone.broker.settings import LOCAL_URL
from backbone.errors import BrokerUnavailableError

__all__ = [
    "LOCAL_URL",
    "BrokerEndpoint",
    "discover_broker",
    "docker_engine_answers",
    "enable_plugins",
]

PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
HOW_TO_GET_ONE = (
    "No RabbitMQ broker answers. Either set AMQP_URL=amqp://user:pass@host:5672/ to a broker "
    "you run, install and start Debian's broker (apt-get install rabbitmq-server && "
    "rabbitmq-server -detached), or start a Docker engine so a testcontainers broker can run."
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """A broker that answered. ``stop`` releases it (a container); a no-op otherwise."""

    url: str
    source: str  # "AMQP_URL", "local", "started", "installed" or "container"
    stop: Callable[[], None] = lambda: None


def _answers(url: str, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on the URL's host and port."""
    parts = urlsplit(url)
    default_port = 5671 if parts.scheme == "amqps" else 5672
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout
        ):
            return True
    except OSError:
        return False


def _wait_until_answers(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(url):
            return True
        time.sleep(0.5)
    return False


def _start_local_node(wait_seconds: float) -> bool:
    server = shutil.which("rabbitmq-server") or (
        "/usr/sbin/rabbitmq-server" if os.path.exists("/usr/sbin/rabbitmq-server") else None
    )
    if server is None:
        return False
    log.info("broker.starting_local_node", command=f"{server} -detached")
    subprocess.run([server, "-detached"], check=False, capture_output=True, timeout=60)
    # The port opens before the node accepts AMQP sessions; rabbitmqctl await_startup knows.
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if os.path.exists(ctl):
        subprocess.run(
            [ctl, "await_startup", "--timeout", str(int(wait_seconds))],
            check=False,
            capture_output=True,
            timeout=wait_seconds + 10,
        )
    return _wait_until_answers(LOCAL_URL, wait_seconds)


def _install_local_node() -> bool:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return False
    log.info("broker.installing", package="rabbitmq-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "rabbitmq-server"],
        check=False,
        env=env,
        capture_output=True,
    )
    # Without systemd the package's own start in postinst can fail and make apt exit
    # non-zero although the server is installed: judge by the binary, then start it.
    return os.path.exists("/usr/sbin/rabbitmq-server")


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=20)
    return probe.returncode == 0


def _container() -> BrokerEndpoint:
    from testcontainers.rabbitmq import RabbitMqContainer

    container = RabbitMqContainer("rabbitmq:3.13-management")
    container.start()
    host = container.get_container_host_ip()
    port = container.get_exposed_port(5672)
    return BrokerEndpoint(
        url=f"amqp://guest:guest@{host}:{port}/", source="container", stop=container.stop
    )


def discover_broker(
    *,
    start: bool = True,
    install: bool = False,
    container: bool = True,
    wait_seconds: float = 90.0,
) -> BrokerEndpoint:
    """Return the first broker that answers, in the documented order."""
    explicit = os.environ.get("AMQP_URL")
    if explicit:
        if _wait_until_answers(explicit, 10):
            return BrokerEndpoint(explicit, "AMQP_URL")
        raise BrokerUnavailableError(
            f"AMQP_URL is set but nothing answers at {urlsplit(explicit).hostname}:"
            f"{urlsplit(explicit).port or 5672}; unset it to use a local broker"
        )
    if _answers(LOCAL_URL):
        return BrokerEndpoint(LOCAL_URL, "local")
    if start and _start_local_node(wait_seconds):
        return BrokerEndpoint(LOCAL_URL, "started")
    if start and install and _install_local_node() and _start_local_node(wait_seconds):
        return BrokerEndpoint(LOCAL_URL, "installed")
    if container and docker_engine_answers():
        return _container()
    raise BrokerUnavailableError(HOW_TO_GET_ONE)


def enable_plugins() -> None:
    """Turn on the management and Prometheus plugins of the local node (live, idempotent)."""
    plugins = shutil.which("rabbitmq-plugins") or "/usr/sbin/rabbitmq-plugins"
    if not os.path.exists(plugins):
        raise BrokerUnavailableError("rabbitmq-plugins not found: is this a local RabbitMQ node?")
    done = subprocess.run(
        [plugins, "enable", *PLUGINS], check=False, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise BrokerUnavailableError(f"enabling {', '.join(PLUGINS)} failed: {done.stderr.strip()}")
