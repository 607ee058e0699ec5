"""The adapter's own count of inbox messages it hands back (``adapters.handbacks``): one that
keeps failing is dead-lettered by the adapter after ``delivery_limit`` failures, before and
whatever the broker's delivery limit, and the sender is told."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import AdapterClient
from adapters.handbacks import HandBacks
from adapters.opening import EnvelopeOpener, Opened
from backbone.errors import Reason
from backbone.wire import H_ENVELOPE
from backbone.wire.events import EventType
from tests.support import Deployment, adapter_deployment_fixture, document_edxml  # noqa: F401

G22, H41 = "000.00.00.G22", "000.00.00.H41"


class _Message:
    def __init__(self, body: bytes, envelope_id: str | None = None) -> None:
        self.body = body
        self.headers = {H_ENVELOPE: envelope_id} if envelope_id else {}


def _message(body: bytes, envelope_id: str | None = None) -> Any:
    return _Message(body, envelope_id)


def test_a_message_goes_back_until_its_limit_th_failure() -> None:
    hand_backs = HandBacks(3)
    message = _message(b"x", "e1")
    assert [hand_backs.failed(message) for _ in range(3)] == [True, True, False]
    assert hand_backs.failed(message)  # forgotten once dead-lettered: a new message


def test_messages_are_counted_apart_by_envelope_id_else_by_body() -> None:
    hand_backs = HandBacks(2)
    assert hand_backs.failed(_message(b"same", "e1"))
    assert hand_backs.failed(_message(b"same", "e2"))  # another envelope
    assert hand_backs.failed(_message(b"body"))
    assert not hand_backs.failed(_message(b"body"))
    assert not hand_backs.failed(_message(b"other", "e1"))  # the envelope id decides


def test_a_message_taken_in_the_end_starts_again_from_zero() -> None:
    hand_backs = HandBacks(2)
    message = _message(b"x", "e1")
    assert hand_backs.failed(message)
    hand_backs.done(message)
    assert hand_backs.failed(message)


def test_the_count_is_bounded_forgetting_the_oldest() -> None:
    hand_backs = HandBacks(2, remembered=2)
    first = _message(b"1", "e1")
    assert hand_backs.failed(first)
    assert hand_backs.failed(_message(b"2", "e2"))
    assert hand_backs.failed(_message(b"3", "e3"))
    assert hand_backs.failed(first)  # e1 was forgotten: counted from zero again


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HandBacks(0)


@pytest.mark.broker
async def test_an_inbox_message_that_keeps_failing_is_dead_lettered_by_the_adapters_count(
    adapter_deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inboxes here carry x-delivery-limit 3; the adapter's own limit of 2 comes first.
    opened: list[bytes] = []

    def failing(self: EnvelopeOpener, body: bytes) -> Opened:
        opened.append(body)
        raise RuntimeError("simulated adapter bug")

    monkeypatch.setattr(EnvelopeOpener, "open", failing)
    exchange = adapter_deployment.exchange
    sender = await adapter_deployment.adapter(G22)
    config = adapter_deployment.config(H41).model_copy(update={"delivery_limit": 2})
    recipient = AdapterClient(config)
    await recipient.start()
    try:
        inbox = adapter_deployment.inbox(recipient)
        receipt = await sender.send(document_edxml(G22, [H41], 1))

        parked = await exchange.drain(exchange.names.dead_letter_parked, expect=1)
        assert len(parked) == 1
        death = parked[0].headers["x-death"][0]
        assert death["reason"] == "rejected"  # the adapter's verdict, not "delivery_limit"
        assert death["queue"] == exchange.inbox_of(H41)
        assert len(opened) == 2
        assert await inbox.quiet() == []
        events = await exchange.events(G22, expect=2)
        dead = [e for e in events if e.type is EventType.DEAD_LETTERED]
        assert [(e.envelope_id, e.reason) for e in dead] == [(receipt.envelope_id, Reason.POISON)]
    finally:
        await recipient.close()
