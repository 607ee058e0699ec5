"""What the router reads from a refused publish and writes on a parked copy when a
recipient's inbox is at its bound (``backbone.router.inbox_full``); the broker side is in
tests/test_broker_bounds.py and the fault scenario."""

from __future__ import annotations

from types import SimpleNamespace

import aiormq
from aiormq.abc import DeliveredMessage

from adapters.gateway.inbound import _send_outcome
from backbone.errors import Reason
from backbone.organ import OrganCode
from backbone.router.inbox_full import (
    held_for,
    held_message,
    is_refused_by_a_queue,
    recipients_of_keys,
)
from backbone.wire import H_HELD_FOR, H_PUBLISHER, H_REASON, Event, EventType
from testkit.store import header

A, B, C = "000.00.00.G22", "000.00.00.H41", "000.07.12.H41"


def test_only_a_nack_is_an_inbox_refusing_not_a_return_or_another_failure() -> None:
    nack = aiormq.exceptions.DeliveryError(None, aiormq.spec.Basic.Nack(delivery_tag=1))
    returned = aiormq.exceptions.PublishError(
        DeliveredMessage(
            delivery=aiormq.spec.Basic.Return(reply_code=312, routing_key="x"),
            header=aiormq.spec.Basic.Properties(),
            body=b"",
            channel=None,  # type: ignore[arg-type]
        ),
        aiormq.spec.Basic.Return(reply_code=312, routing_key="x"),
    )
    assert is_refused_by_a_queue(nack)
    assert not is_refused_by_a_queue(returned)
    assert not is_refused_by_a_queue(ConnectionError("gone"))


def test_refused_routing_keys_are_read_back_as_the_headers_recipients_in_order() -> None:
    about = header(sender=A, recipients=(B, C))
    keys = (OrganCode.parse(C).routing_key, "X99.00.00.000")
    assert recipients_of_keys(about, keys) == (C,)
    assert recipients_of_keys(about, ()) == ()


def test_a_parked_copy_names_its_recipients_and_is_believed_only_from_the_router() -> None:
    about = header(sender=A, recipients=(B, C))
    message = held_message(b"body", about, (B, C), publisher="acct-a", router_account="router")
    headers = message.headers
    assert (headers[H_REASON], headers[H_HELD_FOR], headers[H_PUBLISHER]) == (
        Reason.INBOX_FULL.value,
        f"{B},{C}",
        "acct-a",
    )
    assert message.user_id == "router"

    def incoming(user_id: str, **extra: object) -> SimpleNamespace:
        return SimpleNamespace(user_id=user_id, headers={**headers, **extra})

    assert held_for(incoming("router"), router_account="router") == (B, C)  # type: ignore[arg-type]
    # An agency cannot make the router tell a sender something by forging the headers.
    assert held_for(incoming("acct-a"), router_account="router") is None  # type: ignore[arg-type]
    poison = incoming("router", **{H_REASON: Reason.POISON.value})
    assert held_for(poison, router_account="router") is None  # type: ignore[arg-type]


def test_the_senders_gateway_shows_a_copy_parked_for_a_full_inbox_as_waiting() -> None:
    about = header(sender=A, recipients=(B, C))
    parked = Event.about(
        EventType.DEAD_LETTERED, about, reason=Reason.INBOX_FULL, recipients=(B,), message="full"
    )
    poison = Event.about(EventType.DEAD_LETTERED, about, reason=Reason.POISON, message="bad")
    assert _send_outcome(parked) == ("waiting", "[inbox_full] full")
    assert _send_outcome(poison) == ("fail", "[poison] bad")
