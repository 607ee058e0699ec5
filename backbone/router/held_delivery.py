"""Delivering the copies parked for full inboxes, once their recipients caught up.

``backbone router deliver-held --config FILE`` (the operator, after ``VdxInboxFull``, once the
inbox drained: docs/operations.md): every message the router parked in
``<prefix>.dead-letter.parked`` with ``vdx-reason: inbox_full`` is published again to the
tier exchange of each recipient it is held for, marked as a repeat, confirmed; then it is
acknowledged. A copy an inbox still refuses stays parked, as does everything else in that
queue (poison, dead-lettered by an adapter): those are taken unacknowledged while the queue
is gone through once, and handed back at the end, in their order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from backbone.directory import Directory
from backbone.envelope import read_frame
from backbone.errors import BackboneError
from backbone.organ import OrganCode
from backbone.router.inbox_full import held_for, is_refused_by_a_queue
from backbone.wire import envelope_message
from backbone.wire.names import Names

__all__ = ["HeldDelivery", "deliver_held"]


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    delivered: int  # parked copies every recipient's inbox took
    still_full: int  # copies left parked: an inbox still refused them
    left: int  # other parked messages, untouched

    def __str__(self) -> str:
        return (
            f"delivered {self.delivered} parked copies; {self.still_full} left parked (an "
            f"inbox still at its bound); {self.left} other parked messages untouched"
        )


async def deliver_held(
    channel: AbstractChannel, directory: Directory, names: Names, *, router_account: str
) -> HeldDelivery:
    """Go once through the dead-letter queue on ``channel`` (publisher confirms on)
    delivering what was parked for full inboxes; ``router_account`` is the login the router
    parked them with (their ``user_id``)."""
    queue = await channel.declare_queue(names.dead_letter_parked, passive=True)
    count = int(queue.declaration_result.message_count or 0)
    kept: list[AbstractIncomingMessage] = []
    delivered = still_full = 0
    try:
        for _ in range(count):
            message = await queue.get(fail=False, no_ack=False)
            if message is None:
                break
            recipients = held_for(message, router_account=router_account)
            if recipients is None:
                kept.append(message)
            elif await _deliver(channel, directory, names, message, recipients):
                await message.ack()
                delivered += 1
            else:
                kept.append(message)
                still_full += 1
    finally:
        for message in kept:  # back into the queue, unchanged
            await message.nack(requeue=True)
    return HeldDelivery(delivered, still_full, len(kept) - still_full)


async def _deliver(
    channel: AbstractChannel,
    directory: Directory,
    names: Names,
    message: AbstractIncomingMessage,
    recipients: tuple[str, ...],
) -> bool:
    """Publish ``message``'s envelope to each of ``recipients``; whether all took it."""
    try:
        header = read_frame(message.body).header
    except BackboneError:
        return False
    for recipient in recipients:
        code = OrganCode.parse(recipient)
        exchange = await channel.get_exchange(
            names.tier_exchange(directory.tier_of(code)), ensure=False
        )
        try:
            await exchange.publish(
                envelope_message(
                    message.body,
                    header,
                    message_id=f"{header.envelope_id}/delivered/{uuid.uuid4()}",
                    cc=(),
                    republished=True,  # its recipient drops it if it has it already
                ),
                routing_key=code.routing_key,
                mandatory=True,
            )
        except aio_pika.exceptions.DeliveryError as error:
            if is_refused_by_a_queue(error):
                return False
            raise
    return True
