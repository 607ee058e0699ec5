"""Publishing a checked directory version to every router, adapter and gateway: one persistent
message on the deployment's directory fanout exchange, which feeds the versions stream they
read, confirmed by the broker, as the operator's broker account (the only one allowed to
write there: ``backbone provision``)."""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq.exceptions

from backbone.broker.failures import broker_failure
from backbone.directory import Format
from backbone.errors import BrokerUnavailableError
from backbone.wire.names import H_DIRECTORY_FORMAT, H_DIRECTORY_VERSION, Names

__all__ = ["publish_version"]

_CONTENT_TYPES: dict[Format, str] = {"json": "application/json", "yaml": "application/yaml"}


async def publish_version(
    amqp_url: str, names: Names, data: bytes, format: Format, version_id: str
) -> None:
    """Publish ``data``, a directory file of version ``version_id`` (checked by the caller;
    every replica checks it again), and wait for the broker's confirm. Raise
    :class:`BrokerUnavailableError` when the broker cannot be reached, refuses the account,
    or the versions stream is not bound (no topology of this version yet)."""
    account = unquote(urlsplit(amqp_url).username or "guest")
    try:
        connection = await aio_pika.connect(amqp_url)
    except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, ssl.SSLError) as error:
        raise broker_failure(error, "directory apply", amqp_url) from None
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(names.directory_exchange, ensure=False)
        message = aio_pika.Message(
            data,
            content_type=_CONTENT_TYPES[format],
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=account,  # the broker checks it against the login; routers check it too
            headers={H_DIRECTORY_FORMAT: format, H_DIRECTORY_VERSION: version_id},
        )
        try:
            await exchange.publish(message, routing_key="", mandatory=True)
        except aio_pika.exceptions.DeliveryError:
            raise BrokerUnavailableError(
                f"nothing is bound to {names.directory_exchange} (no stream "
                f"{names.directory_stream}), so nothing would take the version up: start a "
                "router of this version once (it applies the topology) or run `backbone "
                "topology apply`"
            ) from None
        except aiormq.exceptions.ChannelAccessRefused:
            raise BrokerUnavailableError(
                f"the broker refused account {account!r} publishing to "
                f"{names.directory_exchange}: only the operator's account may publish directory "
                "versions (`backbone provision --operator-user`)"
            ) from None
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise BrokerUnavailableError(
                f"{names.directory_exchange} does not exist on the broker: wrong --prefix, or "
                "no router of this deployment has started yet"
            ) from None
