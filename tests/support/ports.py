"""Free TCP ports on 127.0.0.1, for HTTP servers and throwaway broker nodes in tests."""

from __future__ import annotations

import socket

__all__ = ["HOST", "free_port", "free_ports"]

HOST = "127.0.0.1"
# Ports never handed out: epmd, the shared node's AMQP, distribution, management and
# Prometheus ports, and the range the RabbitMQ CLI tools use for their own distribution
# (RABBITMQ_CTL_DIST_PORT_MIN..MAX, 35672..35682 by default).
_RESERVED_PORTS = frozenset({4369, 5671, 5672, 15672, 15692, 25672, *range(35672, 35683)})


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (the kernel's choice), never one
    of the shared broker's or the CLI tools' ports. All sockets are held until every port is
    chosen, so the ports differ from each other."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind((HOST, 0))
            sockets.append(probe)
            port = int(probe.getsockname()[1])
            if port not in _RESERVED_PORTS:
                ports.append(port)
    finally:
        for probe in sockets:
            probe.close()
    return ports


def free_port() -> int:
    """One TCP port free on 127.0.0.1 now (see :func:`free_ports`)."""
    [port] = free_ports(1)
    return port
