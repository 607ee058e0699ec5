"""The gateway as a service of the adapter process: its state, its HTTP server, and the
loops that fill the state (received items, events, owed 01s)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import structlog

from adapters.client import AdapterClient
from adapters.gateway.arrivals import Arrivals
from adapters.gateway.http import BodySpool, gateway_app
from adapters.gateway.inbound import Inbound
from adapters.gateway.operations import Operations
from adapters.gateway.state import GatewayState
from adapters.gateway.systems import resolve_systems
from adapters.sealing_thread import SealingThread
from backbone.clock import Clock, utc_now
from backbone.errors import ConfigurationError
from backbone.observability.http import HttpServer

__all__ = ["Gateway"]

log = structlog.get_logger("adapters.gateway")

_ARRIVAL_RETRY_SECONDS: Final = 15.0  # owed 01s are tried again this often


class Gateway:
    """Serves the axis' API for ``client``'s agencies (configured under ``gateway_*``).
    ``clock`` is the product's (:mod:`backbone.clock`): the times the gateway records and
    the instant its agency lists are answered for."""

    def __init__(self, client: AdapterClient, *, clock: Clock = utc_now) -> None:
        config = client.config
        if config.gateway_port is None or config.gateway_state is None:
            raise ConfigurationError(
                "the gateway needs gateway_port and gateway_state (a directory for its "
                "durable state): set both"
            )
        if (config.gateway_tls_certificate is None) != (config.gateway_tls_key is None):
            raise ConfigurationError(
                "set both gateway_tls_certificate and gateway_tls_key (HTTPS), or neither"
            )
        self.client = client
        self.systems = resolve_systems(config.gateway_systems, client.served)
        self.state = GatewayState(config.gateway_state)
        self.stopping = asyncio.Event()
        self.sealer = SealingThread()
        self.arrivals = Arrivals(client, self.state, self.sealer)
        self.operations = Operations(
            client, self.state, self.systems, self.sealer, self.arrivals, clock=clock
        )
        self.inbound = Inbound(client, self.state, self.stopping)
        self.http = HttpServer(
            gateway_app(
                self.operations,
                self.systems,
                max_body_bytes=config.max_envelope_bytes,
                # Larger than one chunk: to disk as it arrives, then sent in chunks.
                spool=BodySpool(
                    config.gateway_state / "spool",
                    memory_bytes=config.chunk_bytes,
                    file_bytes=config.max_document_bytes + 2,  # the SDK's trailing CRLF
                ),
            ),
            host=config.gateway_host,
            port=config.gateway_port,
            tls_certificate=config.gateway_tls_certificate,
            tls_key=config.gateway_tls_key,
        )

    async def run(self) -> None:
        """Serve until :meth:`stop`; the client must be started."""
        self.sealer.warm_up()
        await self.operations.finish_kept_sends()  # before any new request
        await self.http.start()
        tasks = [
            asyncio.create_task(self.inbound.receive_supervised(), name="gateway-receive"),
            asyncio.create_task(self.inbound.events_supervised(), name="gateway-events"),
            asyncio.create_task(self._arrivals_forever(), name="gateway-arrivals"),
        ]
        log.info(
            "gateway.serving",
            system=self.client.system,
            addresses=[f"{host}:{port}" for host, port in self.http.addresses],
            systems=len(self.systems),
        )
        try:
            await self.stopping.wait()
        finally:
            await self.http.stop()  # in-flight requests finish first
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.sealer.shutdown()
            self.state.close()

    def stop(self) -> None:
        self.stopping.set()

    async def _arrivals_forever(self) -> None:
        """01s owed since before a restart, or while the broker was away."""
        while not self.stopping.is_set():
            await self.arrivals.send_owed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), _ARRIVAL_RETRY_SECONDS)
