"""The adapter's broker connection: connecting (``amqps://``: TLS, the broker's certificate
verified), reconnecting (a robust connection restores its channels and consumers), the
publish channel with publisher confirms, and channels for consumers."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity

from adapters.config import AdapterConfig
from backbone.broker.directory_versions import follow_versions
from backbone.broker.failures import broker_failure
from backbone.errors import BrokerUnavailableError, ConfigurationError, Reason
from backbone.observability import metrics
from backbone.wire import Names

__all__ = ["BrokerConnection"]

log = structlog.get_logger("adapters.client")


class BrokerConnection:
    """One robust connection per adapter, opened by :meth:`open`, closed by :meth:`close`."""

    def __init__(self, config: AdapterConfig, names: Names) -> None:
        self._config = config
        self._names = names
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None  # strong ref: robust channel
        self._submit: AbstractExchange | None = None
        self._versions_channel: AbstractChannel | None = None  # strong ref: robust channel
        self._closing = False
        # A robust connection is not "closed" while it reconnects: readiness needs to know.
        self._lost = False

    @property
    def system(self) -> str:
        return self._config.system

    @property
    def submit(self) -> AbstractExchange | None:
        """The submit exchange on the confirmed publish channel; None when not open."""
        return self._submit

    @property
    def publish_channel(self) -> AbstractChannel | None:
        """The confirmed publish channel (returns raise) beneath :attr:`submit`; None when
        not open."""
        return self._publish_channel

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    async def open(self) -> None:
        """Connect (robust) and open the publish channel. Raises BrokerUnavailableError,
        closed again, when the broker cannot be reached."""
        self._closing = False
        self._lost = False
        try:
            self._connection = await aio_pika.connect_robust(
                self._config.connection_url(),  # amqps://: the broker's certificate verified
                client_properties={"connection_name": f"vdx-adapter {self.system}"},
                reconnect_interval=self._config.reconnect_interval,
                timeout=self._config.connect_timeout,
            )
            self._connection.reconnect_callbacks.add(self._on_reconnect)
            self._connection.close_callbacks.add(self._on_connection_lost)
            self._publish_channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            # ensure=True (a passive declare): a wrong prefix is said now, not at each send.
            self._submit = await self._publish_channel.get_exchange(
                self._names.submit_exchange, ensure=True
            )
        except ChannelNotFoundEntity:
            await self.close()
            raise ConfigurationError(
                f"adapter {self.system}: the broker has no exchange "
                f"{self._names.submit_exchange!r}: set `prefix` to the router's (now "
                f"{self._names.prefix!r}), and start the router once (it applies the "
                "topology) or run `backbone topology apply`",
                reason=Reason.BROKER_TOPOLOGY_MISSING,
            ) from None
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
            await self.close()
            raise broker_failure(
                error, f"adapter {self.system}", self._config.amqp_url.get_secret_value()
            ) from None

    async def follow_versions(
        self, on_version: Callable[[AbstractIncomingMessage], Awaitable[None]]
    ) -> None:
        """Read the directory versions stream into ``on_version``, from its last version on
        (:func:`backbone.broker.directory_versions.follow_versions`), on a channel of its
        own. Raises ConfigurationError when the broker has no such stream."""
        self._versions_channel = await self.channel()
        try:
            await follow_versions(self._versions_channel, self._names, on_version)
        except ChannelNotFoundEntity:
            raise ConfigurationError(
                f"adapter {self.system}: the broker has no stream "
                f"{self._names.directory_stream!r} of directory versions: start a router of "
                "this version once (it applies the topology) or run `backbone topology apply`",
                reason=Reason.BROKER_TOPOLOGY_MISSING,
            ) from None
        except ChannelAccessRefused:
            raise ConfigurationError(
                f"adapter {self.system}: the broker refused its account reading "
                f"{self._names.directory_stream!r}: run `backbone provision` again (it lets "
                "every system's account read the directory versions)"
            ) from None

    async def channel(self) -> AbstractChannel:
        """A new channel (for a consumer); BrokerUnavailableError when not open."""
        if self._connection is None:
            raise BrokerUnavailableError(f"adapter {self.system} is not started (or closed)")
        return await self._connection.channel()

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail
                await self._connection.close()
        self._connection = None
        self._publish_channel = None
        self._versions_channel = None
        self._submit = None

    def problem(self) -> str | None:
        """For readiness: None when connected to the broker, else what is wrong."""
        if self._connection is None or self._connection.is_closed:
            return f"adapter {self.system} is not connected to the broker"
        if self._lost:
            return f"adapter {self.system} lost its broker connection and is reconnecting"
        return None

    def _on_reconnect(self, *_: object) -> None:
        self._lost = False
        metrics.ADAPTER_RECONNECTS.inc()
        log.warning("adapter.reconnected", system=self.system)

    def _on_connection_lost(self, *_: object) -> None:
        if not self._closing:  # robust: it reconnects on its own; publishes fail meanwhile
            self._lost = True
            log.warning("adapter.connection_lost", system=self.system)
