"""Throwaway RabbitMQ nodes beside the shared one, for tests that stop, kill or cluster a
broker (never do that to the shared ``rabbit@localhost`` other tests are using).

Each :class:`LocalNode` is Debian's ``rabbitmq-server`` (3.10) started as a child process
with its own node name, AMQP, distribution and (optionally) management ports, and its own
data, log and config files under ``workdir/<name>/``. Nodes of one ``workdir`` share an
Erlang cookie of their own (``workdir/.erlang-home/.erlang.cookie``, fresh and random), so
the CLI tools reach them and they can cluster with each other, but never with the shared
node. Everything runs as the current user (root here) straight from
``/usr/lib/rabbitmq/bin``; the ``/usr/sbin`` wrappers would switch to the ``rabbitmq``
user, which cannot enter pytest's private temporary directories.

One node::

    from tests.support.broker_nodes import LocalNode, free_ports

    amqp, dist, http = free_ports(3)
    with LocalNode(tmp_path, name="restart", amqp_port=amqp, dist_port=dist,
                   management_port=http) as node:   # start() on enter, cleanup() on exit
        connection = await aio_pika.connect_robust(node.url)
        node.stop_app(); node.start_app()           # the broker restarted under clients
        node.kill()                                 # kill -9 of the beam process
        node.start()                                # same data directory: queues survive

Three nodes, clustered (``rabbitmqctl join_cluster``)::

    with LocalCluster(tmp_path, prefix="qq") as cluster:
        leader = cluster.leader_of("vdx.router.inbound")   # the quorum queue's Raft leader
        cluster.kill_leader_of("vdx.router.inbound")       # kill -9 of that node

In a test, the ``local_node`` fixture is a started node with management whose URL the
harness's management client uses meanwhile (``VDX_MANAGEMENT_URL``), so
``testkit.Exchange.create(local_node.url, …)`` provisions its users there::

    from tests.support.broker_nodes import LocalNode, local_node_fixture  # noqa: F401

    async def test_something(local_node: LocalNode) -> None: ...

``throwaway_node(workdir)`` is the same as a context manager (free ports, unique name).

The methods block (they run ``rabbitmqctl``): call them with ``asyncio.to_thread`` from a
running event loop. ``cleanup()`` (and leaving the ``with`` block, and interpreter exit for
whatever a crashed test left) stops the nodes and removes their directories.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from backbone.broker.management import ManagementClient
from tests.support.ports import HOST, free_ports

__all__ = [
    "LocalCluster",
    "LocalNode",
    "NodeError",
    "free_ports",
    "local_node_fixture",
    "rabbitmq_scripts",
    "throwaway_node",
]

_SCRIPT_DIRS = (Path("/usr/lib/rabbitmq/bin"), Path("/usr/lib/rabbitmq/sbin"))
_START_TIMEOUT = 120.0
_CTL_TIMEOUT = 120.0
_LIVE: set[LocalNode] = set()  # started and not yet cleaned up: stopped at exit


class NodeError(RuntimeError):
    """A throwaway node did not start, stop or answer as asked."""


def rabbitmq_scripts() -> Path:
    """The directory of RabbitMQ's own scripts (not the ``/usr/sbin`` wrappers)."""
    for directory in _SCRIPT_DIRS:
        if (directory / "rabbitmq-server").is_file():
            return directory
    raise NodeError(
        "RabbitMQ's scripts are not installed (looked in "
        f"{', '.join(str(d) for d in _SCRIPT_DIRS)}): install Debian's rabbitmq-server "
        "(`make broker` does) to run tests that need throwaway nodes"
    )


def _cookie_home(workdir: Path) -> Path:
    """The HOME of nodes and CLI calls in ``workdir``: it holds their shared cookie."""
    home = workdir / ".erlang-home"
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        home.mkdir(parents=True, exist_ok=True)
        cookie.write_text(secrets.token_hex(20).upper())
        cookie.chmod(0o400)
    return home


class _Started:
    """``with`` starts it, and cleans up whatever happens (also when starting fails)."""

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


class LocalNode(_Started):
    """One throwaway RabbitMQ node (module docstring). ``extra_config`` is appended to its
    ``rabbitmq.conf`` (e.g. a TLS listener); ``prometheus_port`` enables rabbitmq_prometheus
    there (the metrics endpoint Prometheus scrapes, :15692 on a deployed node)."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        amqp_port: int,
        dist_port: int,
        management_port: int | None = None,
        prometheus_port: int | None = None,
        extra_config: str = "",
    ) -> None:
        if "@" in name or not name:
            raise ValueError(f"give the node's short name without a host; got {name!r}")
        self.workdir = Path(workdir)
        self.name = name
        self.amqp_port = amqp_port
        self.dist_port = dist_port
        self.management_port = management_port
        self.prometheus_port = prometheus_port
        self.extra_config = extra_config
        self.base = self.workdir / name
        self._process: subprocess.Popen[bytes] | None = None

    # -- what clients need -------------------------------------------------------------

    @property
    def node(self) -> str:
        """The Erlang node name, e.g. ``restart@localhost``."""
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        """AMQP as guest (allowed: guest is loopback-only and this is loopback)."""
        return f"amqp://guest:guest@{HOST}:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        """The management API with guest's credentials in it (``VDX_MANAGEMENT_URL``)."""
        if self.management_port is None:
            raise NodeError(f"node {self.node} was created without a management port")
        return f"http://guest:guest@{HOST}:{self.management_port}"

    def management(self) -> ManagementClient:
        return ManagementClient(f"http://{HOST}:{self.management_port}", "guest", "guest")

    @property
    def log_file(self) -> Path:
        return self.base / "log" / f"{self.node}.log"

    @property
    def running(self) -> bool:
        """The node's process is alive (it may still be booting, or its app stopped)."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, timeout: float = _START_TIMEOUT) -> None:
        """Start the node (again, after :meth:`stop` or :meth:`kill`: same data) and wait
        until it has fully booted (``rabbitmqctl await_startup``)."""
        self.launch()
        self.wait_started(timeout=timeout)

    def launch(self) -> None:
        """Start the node's process without waiting for it (see :meth:`wait_started`)."""
        if self.running:
            raise NodeError(f"node {self.node} is already running")
        scripts = rabbitmq_scripts()
        self._write_files()
        console = (self.base / "console.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [str(scripts / "rabbitmq-server")],
                env=self._environment(),
                cwd=self.base,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C goes to pytest, not the node
            )
        finally:
            console.close()
        _LIVE.add(self)

    def wait_started(self, *, timeout: float = _START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise NodeError(f"node {self.node} exited while starting:\n{self.tail()}")
            try:
                if self.ctl("ping", check=False, timeout=30).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass  # a loaded machine: the booting node (or the CLI's own VM) is slow; again
            if time.monotonic() > deadline:
                raise NodeError(f"node {self.node} did not answer in {timeout}s:\n{self.tail()}")
            time.sleep(0.5)
        left = max(10, int(deadline - time.monotonic()))
        self.ctl("await_startup", "--timeout", str(left), timeout=left + 30)

    def stop_app(self) -> None:
        """``rabbitmqctl stop_app``: the broker stops, the Erlang node stays."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """``rabbitmqctl start_app``, then wait until it has booted."""
        self.ctl("start_app")
        self.ctl("await_startup")

    def stop(self, *, timeout: float = 60.0) -> None:
        """Stop the node gracefully (``rabbitmqctl stop``); kill it if that does not work."""
        if not self.running:
            self._reap()
            return
        self.ctl("stop", check=False, timeout=timeout)
        assert self._process is not None
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def kill(self) -> None:
        """``kill -9`` of the beam process: no goodbye to clients or to the cluster."""
        pid = self.beam_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)  # the script and epmd helpers
            self._process.wait(timeout=30)
        self._reap()

    def cleanup(self) -> None:
        """Stop (or kill) the node and remove its directory."""
        try:
            self.stop(timeout=30)
        except Exception:
            self.kill()
        finally:
            _LIVE.discard(self)
            shutil.rmtree(self.base, ignore_errors=True)

    # -- tools ---------------------------------------------------------------------------

    def ctl(
        self,
        *args: str,
        check: bool = True,
        timeout: float = _CTL_TIMEOUT,
        tool: str = "rabbitmqctl",
    ) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n NODE ARGS`` (or ``rabbitmq-queues`` …) against this node."""
        done = subprocess.run(
            [str(rabbitmq_scripts() / tool), "-n", self.node, *args],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise NodeError(
                f"{tool} {' '.join(args)} on {self.node} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout)[-2000:]}"
            )
        return done

    def beam_pid(self) -> int | None:
        """The Erlang VM's process id (from the pid file), if it is running."""
        try:
            pid = int((self.base / "rabbitmq.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def tail(self, size: int = 3000) -> str:
        """The end of the node's console output and log (for failure messages)."""
        parts = []
        for path in (self.base / "console.log", self.log_file):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-size:]}")
        return "\n".join(parts)

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None

    def _write_files(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        lines = ["loopback_users.guest = true", "log.console = false"]
        plugins: list[str] = []
        if self.management_port is not None:
            plugins.append("rabbitmq_management")
            lines += [
                f"management.tcp.port = {self.management_port}",
                f"management.tcp.ip = {HOST}",
                "collect_statistics_interval = 1000",
            ]
        if self.prometheus_port is not None:
            plugins.append("rabbitmq_prometheus")
            lines += [
                f"prometheus.tcp.port = {self.prometheus_port}",
                f"prometheus.tcp.ip = {HOST}",
            ]
        (self.base / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (self.base / "rabbitmq.conf").write_text("\n".join([*lines, self.extra_config, ""]))

    def _environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k not in ("NODENAME", "CONFIG_FILE")
        }
        env |= {
            "HOME": str(_cookie_home(self.workdir)),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.base / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": HOST,
            # Distribution on loopback only, like the shared node.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        return env

    def __repr__(self) -> str:
        return f"LocalNode({self.node}, amqp={self.amqp_port})"


class LocalCluster(_Started):
    """``size`` throwaway nodes (``<prefix>1``, ``<prefix>2`` …) joined into one cluster,
    each with management on its own port (the management API of a cluster wants its agent
    on every node)."""

    def __init__(
        self, workdir: Path, *, size: int = 3, prefix: str = "vdxc", extra_config: str = ""
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = Path(workdir)
        ports = free_ports(3 * size)
        self.nodes = [
            LocalNode(
                self.workdir,
                name=f"{prefix}{n + 1}",
                amqp_port=ports[3 * n],
                dist_port=ports[3 * n + 1],
                management_port=ports[3 * n + 2],
                extra_config=extra_config,
            )
            for n in range(size)
        ]

    def start(self) -> None:
        """Start every node (at once), then join the others to the first one."""
        for node in self.nodes:
            node.launch()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(node.wait_started) for node in self.nodes]:
                started.result()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.stop_app()
            node.ctl("reset")
            node.ctl("join_cluster", first.node)
            node.start_app()
        members = self.running_nodes(first)
        if sorted(members) != sorted(n.node for n in self.nodes):
            raise NodeError(f"the cluster formed as {members}, not {[n.node for n in self.nodes]}")

    def running_nodes(self, via: LocalNode | None = None) -> list[str]:
        """Node names the cluster reports running (asked through ``via``, or a live node)."""
        asked = via or self.alive()[0]
        status = json.loads(asked.ctl("cluster_status", "--formatter", "json").stdout)
        return list(status.get("running_nodes", []))

    def alive(self) -> list[LocalNode]:
        return [node for node in self.nodes if node.running]

    def node_named(self, node_name: str) -> LocalNode:
        for node in self.nodes:
            if node.node == node_name:
                return node
        raise KeyError(node_name)

    def leader_of(self, queue: str, *, vhost: str = "/") -> LocalNode:
        """The node leading quorum queue ``queue`` now (``rabbitmqctl list_queues name
        leader``, asked of a live node)."""
        for asked in self.alive():
            done = asked.ctl(
                "list_queues", "-p", vhost, "name", "leader", "--formatter", "json", check=False
            )
            if done.returncode != 0:
                continue
            for row in json.loads(done.stdout):
                if row.get("name") == queue and row.get("leader"):
                    return self.node_named(str(row["leader"]))
            raise NodeError(f"{asked.node} knows no leader of queue {queue!r}")
        raise NodeError("no live node answered list_queues")

    def kill_leader_of(self, queue: str, *, vhost: str = "/") -> LocalNode:
        """``kill -9`` the node leading ``queue``; returns it (``start()`` brings it back)."""
        leader = self.leader_of(queue, vhost=vhost)
        leader.kill()
        return leader

    def cleanup(self) -> None:
        """Stop every node (in parallel) and remove their directories, whatever happens."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(_cleanup_quietly, self.nodes))

    def __iter__(self) -> Iterator[LocalNode]:
        return iter(self.nodes)


@contextlib.contextmanager
def throwaway_node(
    workdir: Path, *, prefix: str = "vdxt", extra_config: str = ""
) -> Iterator[LocalNode]:
    """A started node with management, on free ports, under a unique name; cleaned up."""
    amqp, dist, http = free_ports(3)
    node = LocalNode(
        workdir,
        name=f"{prefix}{secrets.token_hex(3)}",
        amqp_port=amqp,
        dist_port=dist,
        management_port=http,
        extra_config=extra_config,
    )
    with node:
        yield node


@pytest.fixture(name="local_node")
def local_node_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalNode]:
    """A throwaway node; the harness's management client (``VDX_MANAGEMENT_URL``) points at
    it meanwhile. Use it from a test module with::

        from tests.support.broker_nodes import local_node_fixture  # noqa: F401
    """
    with throwaway_node(tmp_path / "nodes") as node:
        monkeypatch.setenv("VDX_MANAGEMENT_URL", node.management_url)
        yield node


def _cleanup_quietly(node: LocalNode) -> None:
    with contextlib.suppress(Exception):
        node.cleanup()


@atexit.register
def _kill_leftovers() -> None:
    """Whatever a crashed test left running does not outlive the test process."""
    for node in list(_LIVE):
        with contextlib.suppress(Exception):
            node.kill()
        shutil.rmtree(node.base, ignore_errors=True)
