"""The Python API's events stream (``AdapterClient.events``) on the real broker and router:
what it yields, when it acknowledges, what it logs and counts, and what it leaves out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from structlog.testing import capture_logs

from adapters.abc import Event, EventType
from backbone.edxml import StatusCode
from backbone.errors import Reason
from backbone.observability import metrics
from backbone.organ import OrganCode
from testkit import HUB, Deployment, document_edxml, document_id
from tests.support import adapter_deployment_fixture  # noqa: F401

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, H41 = "000.00.00.G22", "000.00.00.H41"
H53, H53_DISTRICT = "000.00.00.H53", "000.00.32.H53"


async def take(iterator: AsyncIterator[Event], timeout: float = 20.0) -> Event:
    return await asyncio.wait_for(anext(iterator), timeout)


def counted(event_type: str, reason: str) -> float:
    value = metrics.ADAPTER_EVENTS.labels(event_type, reason)._value.get()
    return float(value)


async def test_a_refusal_is_a_typed_event_logged_with_its_ids_and_counted_by_reason(
    adapter_deployment: Deployment,
) -> None:
    sender = await adapter_deployment.adapter(G22)
    before = counted("rejected", "status_unknown_document")
    receipt = await sender.send_status(document_id(H41, 90), StatusCode.ACCEPTED, "ok")

    with capture_logs() as logs:
        iterator = aiter(sender.events())
        event = await take(iterator)
        await iterator.aclose()  # type: ignore[attr-defined]

    assert event.type is EventType.REJECTED
    assert event.reason is Reason.STATUS_UNKNOWN_DOCUMENT
    assert (event.envelope_id, event.document_id) == (receipt.envelope_id, document_id(H41, 90))
    assert event.message
    assert counted("rejected", "status_unknown_document") == before + 1
    [line] = [entry for entry in logs if entry["event"] == "adapter.event"]
    assert line["envelope_id"] == receipt.envelope_id
    assert line["document_id"] == document_id(H41, 90)
    assert line["reason"] == "status_unknown_document"
    assert line["log_level"] == "warning"


async def test_an_event_is_acknowledged_only_when_the_consumer_asks_for_the_next(
    adapter_deployment: Deployment,
) -> None:
    sender = await adapter_deployment.adapter(G22)
    first = await sender.send(document_edxml(G22, [H41], 1))

    # Taken but not followed by a request for the next: not acknowledged.
    iterator = aiter(sender.events())
    event = await take(iterator)
    await iterator.aclose()  # type: ignore[attr-defined]
    assert event.envelope_id == first.envelope_id

    iterator = aiter(sender.events())
    again = await take(iterator)
    assert again.event_id == event.event_id  # handed out again, the same event
    second = await sender.send(document_edxml(G22, [H41], 2))
    following = await take(iterator)  # asking for it acknowledged the first
    await iterator.aclose()  # type: ignore[attr-defined]
    assert following.envelope_id == second.envelope_id

    iterator = aiter(sender.events())
    third = await take(iterator)  # the second came back (not acknowledged), the first not
    await iterator.aclose()  # type: ignore[attr-defined]
    assert third.event_id == following.event_id


async def test_a_hub_hands_out_only_the_events_of_the_agencies_it_serves(
    adapter_deployment: Deployment,
) -> None:
    # Two configurations of the one hub account: the district's events reach the queue the
    # H53-only adapter reads, which must not hand them out as its own.
    district = await adapter_deployment.adapter(HUB, [H53_DISTRICT])
    province = await adapter_deployment.adapter(HUB, [H53])
    await district.send(document_edxml(H53_DISTRICT, [G22], 1))
    mine = await province.send(document_edxml(H53, [G22], 2))

    handed_out: list[Event] = []

    async def consume() -> None:
        async for event in province.events():
            handed_out.append(event)

    with capture_logs() as logs:
        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(20):
            while not handed_out or not _logged(logs, "adapter.event_not_served"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # nothing else comes
        consumer.cancel()

    assert [(e.party, e.envelope_id) for e in handed_out] == [(H53, mine.envelope_id)]
    skipped = [entry for entry in logs if entry["event"] == "adapter.event_not_served"]
    assert [entry["party"] for entry in skipped] == [H53_DISTRICT]


def _logged(logs: list[dict[str, Any]], name: str) -> bool:
    return any(entry["event"] == name for entry in logs)


async def test_a_message_that_is_no_list_of_events_is_logged_and_skipped(
    adapter_deployment: Deployment,
) -> None:
    sender = await adapter_deployment.adapter(G22)
    exchange = adapter_deployment.exchange
    channel = await exchange.channel(exchange.account_of(G22))
    events = await channel.get_exchange(exchange.names.events_exchange, ensure=False)
    key = exchange.names.event_routing_key("routed", OrganCode.parse(G22))
    await events.publish(aio_pika.Message(b'{"not": "a list"}'), routing_key=key)
    receipt = await sender.send(document_edxml(G22, [H41], 3))

    with capture_logs() as logs:
        iterator = aiter(sender.events())
        event = await take(iterator)
        await iterator.aclose()  # type: ignore[attr-defined]

    assert event.envelope_id == receipt.envelope_id
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "adapter.event_unreadable"
    ]
