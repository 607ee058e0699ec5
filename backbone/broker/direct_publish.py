"""One publish through aiormq, beneath aio-pika: the router's and the adapters' hot path.

aio-pika's ``Exchange.publish`` takes an ``aio_pika.Message`` and builds the frame's
properties from it; building that message (a dozen attribute writes, each checking the
message's lock) cost the router more per copy than the frames themselves. The caller makes
the properties itself (``backbone.wire.envelope_properties``) and this hands them to the
robust channel's current aiormq channel, as ``Exchange.publish`` does: the same frames, the
same confirm, the same errors (``DeliveryError`` on a nack, ``PublishError`` on a return
when the channel was opened with ``on_return_raises``, ``ChannelInvalidStateError`` while a
robust connection reconnects, ``TimeoutError`` past ``timeout``).
"""

from __future__ import annotations

import aiormq
from aio_pika.abc import AbstractChannel

__all__ = ["publish"]


async def publish(
    channel: AbstractChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: aiormq.spec.Basic.Properties,
    *,
    mandatory: bool,
    timeout: float | None = None,
) -> None:
    """Publish ``body`` on ``channel`` (publisher confirms on); return once confirmed, or
    raise ``TimeoutError`` when not confirmed within ``timeout`` seconds (None: no limit)."""
    if channel.is_closed:
        raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
    underlay = await channel.get_underlay_channel()  # after a reconnect: the new one
    assert isinstance(underlay, aiormq.Channel)  # its abstract type lacks ``wait``
    await underlay.basic_publish(
        body,
        exchange=exchange,
        routing_key=routing_key,
        properties=properties,
        mandatory=mandatory,
        timeout=timeout,
        # Not waiting for the frames to be written: the confirm awaited next comes after
        # them, and a channel or connection lost meanwhile fails it all the same (aiormq
        # awaits it under the same close guard). One future and one wake-up less per copy.
        wait=False,
    )
