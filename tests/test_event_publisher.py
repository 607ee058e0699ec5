"""EventPublisher: events grouped per routing key while a publish is in flight."""

from __future__ import annotations

import asyncio

import pytest

from backbone.envelope.model import MAX_RECIPIENTS
from backbone.router.publisher import EventPublisher
from backbone.wire.events import Event, EventType, decode_events, encode_events, status_events
from testkit import header

G22, H41 = "000.00.00.G22", "000.00.00.H41"


class Broker:
    """Records each publish; confirms when the test says so."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[Event], str]] = []
        self.confirm = asyncio.Event()
        self.confirm.set()
        self.fail_key: str | None = None

    async def publish(self, routing_key: str, body: bytes, event_type: str) -> None:
        self.messages.append((routing_key, decode_events(body), event_type))
        await self.confirm.wait()
        if routing_key == self.fail_key:
            raise ConnectionError("channel closed")


async def settle() -> None:
    """Let every ready task run until each waits on something."""
    for _ in range(5):
        await asyncio.sleep(0)


def routed(party: str = G22, n: int = 0) -> Event:
    return Event(type=EventType.ROUTED, party=party, document_id=f"doc {n}")


async def test_an_idle_publisher_sends_the_first_event_at_once_and_alone() -> None:
    broker = Broker()
    publisher = EventPublisher(broker.publish)

    await publisher.emit(routed(), "routed.G22")

    assert [(key, [e.document_id for e in events]) for key, events, _ in broker.messages] == [
        ("routed.G22", ["doc 0"])
    ]
    assert broker.messages[0][2] == "routed"


async def test_events_arriving_during_a_publish_share_one_message_per_routing_key() -> None:
    broker = Broker()
    broker.confirm.clear()
    publisher = EventPublisher(broker.publish)
    first = asyncio.create_task(publisher.emit(routed(n=0), "routed.G22"))
    await settle()  # the first goes out alone and waits for its confirm
    rest = [
        asyncio.create_task(publisher.emit(routed(G22, n), "routed.G22")) for n in range(1, 4)
    ] + [asyncio.create_task(publisher.emit(routed(H41, 9), "routed.H41"))]
    await settle()
    assert len(broker.messages) == 1
    assert not first.done()

    broker.confirm.set()
    await asyncio.gather(first, *rest)

    grouped = {key: [e.document_id for e in events] for key, events, _ in broker.messages[1:]}
    assert grouped == {"routed.G22": ["doc 1", "doc 2", "doc 3"], "routed.H41": ["doc 9"]}


async def test_a_caller_returns_only_once_its_message_is_confirmed() -> None:
    broker = Broker()
    broker.confirm.clear()
    publisher = EventPublisher(broker.publish)
    emitted = asyncio.create_task(publisher.emit(routed(), "routed.G22"))
    await asyncio.sleep(0.01)
    assert not emitted.done()
    broker.confirm.set()
    await asyncio.wait_for(emitted, 1)


async def test_a_failed_publish_fails_the_callers_in_that_message_only() -> None:
    broker = Broker()
    broker.confirm.clear()
    publisher = EventPublisher(broker.publish)
    first = asyncio.create_task(publisher.emit(routed(), "routed.G22"))
    await settle()
    broker.fail_key = "routed.H41"
    doomed = [asyncio.create_task(publisher.emit(routed(H41, n), "routed.H41")) for n in range(2)]
    fine = asyncio.create_task(publisher.emit(routed(G22, 5), "routed.G22"))
    broker.confirm.set()

    await first
    await fine
    for task in doomed:
        with pytest.raises(ConnectionError, match="channel closed"):
            await task
    # The publisher goes on after a failure.
    broker.fail_key = None
    await publisher.emit(routed(H41, 7), "routed.H41")


async def test_a_message_holds_at_most_max_events() -> None:
    broker = Broker()
    broker.confirm.clear()
    publisher = EventPublisher(broker.publish, max_events=2)
    first = asyncio.create_task(publisher.emit(routed(n=0), "routed.G22"))
    await settle()
    rest = [asyncio.create_task(publisher.emit(routed(n=n), "routed.G22")) for n in range(1, 6)]
    broker.confirm.set()
    await asyncio.gather(first, *rest)

    assert [len(events) for _, events, _ in broker.messages] == [1, 2, 2, 1]


def test_a_message_holds_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        EventPublisher(Broker().publish, max_events=0)


def test_a_status_to_the_most_recipients_is_one_small_event_per_recipient() -> None:
    """Issue 14, finding 9: 1,000 events each listing all 1,000 recipients were 16 MB of
    events for one take-back; each event now lists its own recipient only."""
    recipients = tuple(f"000.00.{n // 100:02d}.G{n % 100:02d}" for n in range(MAX_RECIPIENTS))
    take_back = header(sender="000.00.99.H41", recipients=recipients, status_code="13")
    events = status_events(take_back)
    assert [event.party for event in events] == list(recipients)
    assert all(event.recipients == (event.party,) for event in events)
    assert all(event.sender == "000.00.99.H41" for event in events)
    sizes = {len(encode_events([event])) for event in events}
    assert max(sizes) < 1024  # one recipient's worth, whatever the fan-out
    total = len(encode_events(events))
    assert total < 1024 * MAX_RECIPIENTS  # 0.4 MB (399 bytes an event), not 16 MB
