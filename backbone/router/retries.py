"""The router's own count of failed processing attempts, so that poison handling does not
depend on the broker counting nacks.

RabbitMQ 3.10 has no default delivery limit on quorum queues, 4.0 has 20, and 4.3 stopped
counting a nack (``basic.reject`` with requeue) toward it: a requeued envelope that keeps
failing could loop for ever. So the router never requeues a failed envelope: it publishes it
again to its inbound queue, behind whatever waits there, with the attempts so far in
``vdx-attempts`` (no ``x-`` prefix: 3.13+ treats those as the broker's), and acknowledges
the delivery once that publish is confirmed. At ``delivery_limit`` failed attempts it
publishes the envelope to the dead-letter exchange itself, with the reason ``poison``; the
router's dead-letter notice handler then records it and tells the sender, as for one the
broker dead-lettered.

The copy carries the broker account that published the envelope in ``vdx-publisher``
(the pipeline checks that account against the sender) and the router's own account as
``user_id``. The broker refuses a ``user_id`` that is not the publishing connection's login,
so only the router (or an operator holding its account) can publish a message with that
``user_id``: those headers are read only then. On an agency's message they are ignored,
whatever they say: an agency that presets ``vdx-attempts`` gets its envelope processed like
any other, and one that forges ``vdx-publisher`` is still checked as the account it
published with.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import aio_pika
from aio_pika.abc import FieldValue
from yarl import URL

from backbone.broker.direct_consume import Received
from backbone.clock import utc_now
from backbone.errors import Reason
from backbone.wire import H_ATTEMPTS, H_MESSAGE, H_PUBLISHER, H_REASON, H_WAITING_SINCE

__all__ = [
    "Attempts",
    "broker_login",
    "dead_letter_message",
    "is_router_dead_letter",
    "read_attempts",
    "retry_message",
    "waiting_message",
    "waiting_since",
]

_MAX_MESSAGE_CHARS = 500  # of the last failure, for operators reading the dead-letter queue


def broker_login(amqp_url: str) -> str:
    """The account the router logs in with: aiormq's PLAIN login (``guest`` when the URL
    names none), which the broker checks every ``user_id`` the router sets against."""
    return URL(amqp_url).user or "guest"


@dataclass(frozen=True, slots=True)
class Attempts:
    """What a delivery says about its past, once its origin is checked."""

    failed: int  # failed processing attempts before this delivery (0: first receipt)
    publisher: str | None  # the broker account that published the envelope in the first place


def read_attempts(message: Received, *, router_account: str) -> Attempts:
    """The attempts and the original publisher of ``message``: from its headers when the
    router published it (its ``user_id``), else a first receipt from ``message.user_id``."""
    headers = message.headers or {}
    if message.user_id != router_account or H_ATTEMPTS not in headers:
        return Attempts(0, message.user_id)
    failed = headers.get(H_ATTEMPTS)
    publisher = headers.get(H_PUBLISHER)
    return Attempts(
        failed if isinstance(failed, int) and not isinstance(failed, bool) and failed > 0 else 0,
        publisher if isinstance(publisher, str) and publisher else None,
    )


def retry_message(body: bytes, attempts: Attempts, *, router_account: str) -> aio_pika.Message:
    """``body`` to publish again to the inbound queue after ``attempts.failed`` failures.
    Nothing of the consumed message's own headers is kept: only the router's."""
    return _message(body, _headers(attempts), router_account=router_account)


def dead_letter_message(
    body: bytes, attempts: Attempts, error: BaseException, *, router_account: str
) -> aio_pika.Message:
    """``body`` for the dead-letter exchange after ``attempts.failed`` failures, the last
    one ``error``: the reason, the last failure and the original publisher in headers."""
    headers = _headers(attempts)
    headers[H_REASON] = Reason.POISON.value
    headers[H_MESSAGE] = (
        f"processing failed {attempts.failed} times; the last: {type(error).__name__}: {error}"
    )[:_MAX_MESSAGE_CHARS]
    return _message(body, headers, router_account=router_account)


def waiting_message(
    body: bytes, attempts: Attempts, since: datetime, *, router_account: str
) -> aio_pika.Message:
    """A chunk whose header is not routed yet, to put back behind the chunk queue rather
    than hold: ``since`` when a router first found it so."""
    headers = _headers(attempts)
    headers[H_WAITING_SINCE] = since.isoformat()
    return _message(body, headers, router_account=router_account)


def waiting_since(message: Received, *, router_account: str) -> datetime | None:
    """When a router first put ``message`` back waiting for its header (None: never, or not
    a message the router published)."""
    value = (message.headers or {}).get(H_WAITING_SINCE)
    if message.user_id != router_account or not isinstance(value, str):
        return None
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        return None
    return since if since.tzinfo is not None else None


def is_router_dead_letter(message: Received, *, router_account: str) -> bool:
    """Whether the router dead-lettered ``message`` itself (not the broker, from a queue)."""
    return (
        message.user_id == router_account
        and (message.headers or {}).get(H_REASON) == Reason.POISON.value
        and H_ATTEMPTS in (message.headers or {})
    )


def _headers(attempts: Attempts) -> dict[str, FieldValue]:
    headers: dict[str, FieldValue] = {H_ATTEMPTS: attempts.failed}
    if attempts.publisher is not None:
        headers[H_PUBLISHER] = attempts.publisher
    return headers


def _message(
    body: bytes, headers: dict[str, FieldValue], *, router_account: str
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=router_account,  # the broker vouches for it: the mark the headers are read by
        message_id=str(uuid.uuid4()),  # returns are matched by it: unique per publish
        timestamp=utc_now(),
    )
