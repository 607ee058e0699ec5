"""A recipient's inbox at its bound: the copy for that recipient is parked, never retried.

Inboxes are bounded (``backbone provision``, policy ``<prefix>-inboxes``) with
``overflow: reject-publish``: once an agency has not fetched for so long that its inbox holds
the bound, the broker refuses further copies for it and nacks the publish; every other queue
the publish reached still took its copy. The router then parks the refused recipients' copy
in the dead-letter queue, marked ``inbox_full`` with the recipients it is held for, tells the
sender which recipients did not get it, and goes on: one agency's backlog never stalls or
slows the others (docs/operations.md, "A lagging agency"). ``backbone router deliver-held``
delivers the parked copies once their inboxes take them again (``router.held_delivery``).
"""

from __future__ import annotations

import uuid

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from backbone.clock import utc_now
from backbone.envelope import EnvelopeHeader
from backbone.errors import Reason
from backbone.organ import OrganCode
from backbone.wire import H_HELD_FOR, H_MESSAGE, H_PUBLISHER, H_REASON

__all__ = ["held_for", "held_message", "is_refused_by_a_queue", "recipients_of_keys"]


def is_refused_by_a_queue(error: BaseException) -> bool:
    """Whether a confirmed publish failed because a queue refused it (``basic.nack``: an
    inbox at its bound), not because nothing was bound (a return) or the channel broke."""
    return (
        isinstance(error, aiormq.exceptions.DeliveryError)
        and not isinstance(error, aiormq.exceptions.PublishError)
        and isinstance(error.frame, aiormq.spec.Basic.Nack)
    )


def recipients_of_keys(header: EnvelopeHeader, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The header's recipients whose routing key is among ``keys``, in the header's order."""
    wanted = set(keys)
    return tuple(r for r in header.recipients if OrganCode.parse(r).routing_key in wanted)


def held_message(
    body: bytes,
    header: EnvelopeHeader,
    recipients: tuple[str, ...],
    *,
    publisher: str | None,
    router_account: str,
) -> aio_pika.Message:
    """The copy to park for ``recipients``, whose inboxes refused it. ``user_id`` is the
    router's account: the broker vouches that the router wrote these headers."""
    headers: dict[str, aio_pika.abc.FieldValue] = {
        H_REASON: Reason.INBOX_FULL.value,
        H_HELD_FOR: ",".join(recipients),
        H_MESSAGE: f"the inbox of {', '.join(recipients)} is at its bound",
    }
    if publisher:
        headers[H_PUBLISHER] = publisher
    return aio_pika.Message(
        body,
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=router_account,
        message_id=f"{header.envelope_id}/held/{uuid.uuid4()}",
        timestamp=utc_now(),
    )


def held_for(message: AbstractIncomingMessage, *, router_account: str) -> tuple[str, ...] | None:
    """The recipients a parked copy is held for, when the router parked it for a full inbox
    (its ``user_id``); ``None`` for anything else."""
    headers = message.headers or {}
    if message.user_id != router_account or headers.get(H_REASON) != Reason.INBOX_FULL.value:
        return None
    held = headers.get(H_HELD_FOR)
    if not isinstance(held, str) or not held:
        return None
    return tuple(held.split(","))
