"""One contract for :class:`adapters.abc.Adapter`, run against the hand-written fake
(``testkit.fake_adapter``) and the real ``AdapterClient`` on the real broker with a router
between two adapters: what the drop folder (or any integration) may rely on of either.

Each world gives a sending adapter serving G22, a receiving one serving H41, and
``carry()``: what the broker and router do between them (nothing to do for the real one;
for the fake, the envelopes it published are opened for real and handed to the other)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from adapters.abc import Adapter, Event, EventType, Receipt, Received
from backbone.clock import utc_now
from backbone.edxml import EdxmlDocument, StatusCode, validate
from backbone.envelope import decrypt, read_frame, verify_frame
from backbone.errors import EdxmlError, Reason, RoutingError
from testkit import FakeAdapter, document_edxml, document_id, open_deployment
from tests.support import DevPki, make_pki

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

G22, H41 = "000.00.00.G22", "000.00.00.H41"
MALFORMED = b'<?xml version="1.0"?>\n<edXML>\n  <edXMLHeader>\n</edXML>\n'


@dataclass
class FakeWorld:
    pki: DevPki
    sender: FakeAdapter
    recipient: FakeAdapter
    _carried: int = field(default=0)
    _claims: dict[tuple[str, str], str] = field(default_factory=dict)

    async def carry(self) -> None:
        """Open what the sender published since, for real, and hand it to the recipient;
        tell the sender as the router would: routed, or the same document again with other
        content refused as ``duplicate_conflict``."""
        for body in self.sender.published[self._carried :]:
            envelope = verify_frame(read_frame(body), self.pki.validator())
            header = envelope.header
            claim = (header.sender, header.document_id)
            first = self._claims.setdefault(claim, header.envelope_id)
            if first != header.envelope_id:
                self.sender.router_events.put_nowait(
                    Event.about(
                        EventType.REJECTED,
                        header,
                        reason=Reason.DUPLICATE_CONFLICT,
                        message=f"already sent as envelope {first} with other content",
                    )
                )
                continue
            self.sender.router_events.put_nowait(Event.about(EventType.ROUTED, header))
            for code in header.recipients:
                if code not in self.recipient.served:
                    continue
                edxml = decrypt(
                    envelope, recipient=code, recipient_key=self.pki.agency(code).key
                ).edxml
                pem = self.pki.agency(header.sender).certificate.public_bytes(
                    serialization.Encoding.PEM
                )
                self.recipient.incoming.put_nowait(
                    Received(header, code, edxml, validate(edxml), pem.decode(), utc_now())
                )
        self._carried = len(self.sender.published)


@dataclass
class RealWorld:
    sender: Adapter
    recipient: Adapter

    async def carry(self) -> None:
        """The broker and the router carry it."""


World = FakeWorld | RealWorld


@pytest.fixture(scope="module")
def fake_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_pki(tmp_path_factory.mktemp("contract-pki"))


@pytest.fixture(params=["fake", "real"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    if request.param == "fake":
        pki: DevPki = request.getfixturevalue("fake_pki")
        yield FakeWorld(pki, FakeAdapter(pki, served=(G22,)), FakeAdapter(pki, served=(H41,)))
        return
    amqp_url: str = request.getfixturevalue("amqp_url")
    async with open_deployment(amqp_url, tmp_path) as deployment:
        sender = await deployment.adapter(G22, auto_arrival=False)
        recipient = await deployment.adapter(H41, auto_arrival=False)
        yield RealWorld(sender, recipient)


async def first_received(adapter: Adapter) -> Received:
    iterator = aiter(adapter.received())
    try:
        return await asyncio.wait_for(anext(iterator), 20)
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]


async def next_event(adapter: Adapter, iterator: AsyncIterator[Event] | None = None) -> Event:
    return await asyncio.wait_for(anext(iterator or aiter(adapter.events())), 20)


async def test_a_routed_document_is_reported_to_its_sender_as_routed(world: World) -> None:
    receipt = await world.sender.send(document_edxml(G22, [H41], 6))
    await world.carry()

    iterator = aiter(world.sender.events())
    try:
        event = await next_event(world.sender, iterator)
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]

    assert event.type is EventType.ROUTED
    assert (event.envelope_id, event.document_id) == (receipt.envelope_id, receipt.document_id)
    assert event.party == G22
    assert event.reason is None


async def test_a_router_refusal_reaches_the_sender_with_its_reason_and_message(
    world: World,
) -> None:
    await world.sender.send(document_edxml(G22, [H41], 7))
    # The same DocumentId again, with other content: the router refuses it.
    second = await world.sender.send(document_edxml(G22, [H41], 7, subject="Changed"))
    await world.carry()

    iterator = aiter(world.sender.events())
    try:
        events = [await next_event(world.sender, iterator) for _ in range(2)]
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]

    refused = [e for e in events if e.type is EventType.REJECTED]
    assert [(e.envelope_id, e.reason) for e in refused] == [
        (second.envelope_id, Reason.DUPLICATE_CONFLICT)
    ]
    assert refused[0].document_id == document_id(G22, 7)
    assert refused[0].message


async def test_seal_refuses_malformed_edxml_naming_its_line(world: World) -> None:
    with pytest.raises(EdxmlError) as refused:
        world.sender.seal(MALFORMED)

    assert refused.value.reason == Reason.EDXML_NOT_WELL_FORMED
    assert refused.value.line is not None


async def test_seal_refuses_a_document_from_an_agency_it_does_not_serve(world: World) -> None:
    with pytest.raises(RoutingError) as refused:
        world.sender.seal(document_edxml(H41, [G22], 1))

    assert refused.value.reason == Reason.PUBLISHER_MISMATCH


async def test_publish_returns_a_receipt_for_the_sealed_envelope(world: World) -> None:
    sealed = world.sender.seal(document_edxml(G22, [H41], 2))

    receipt = await world.sender.publish(sealed)

    assert isinstance(receipt, Receipt)
    assert receipt.envelope_id == sealed.header.envelope_id
    assert receipt.document_id == document_id(G22, 2)
    assert receipt.sender == G22
    assert receipt.recipients == (H41,)


async def test_a_sent_document_comes_back_to_its_recipient(world: World) -> None:
    receipt = await world.sender.send(document_edxml(G22, [H41], 3))
    await world.carry()

    item = await first_received(world.recipient)

    assert item.envelope_id == receipt.envelope_id
    assert item.recipient == H41
    assert item.header.sender == G22
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.document_id == document_id(G22, 3)


async def test_arrival_is_acknowledged_for_a_received_document(world: World) -> None:
    await world.sender.send(document_edxml(G22, [H41], 4))
    await world.carry()
    item = await first_received(world.recipient)

    receipt = await world.recipient.acknowledge_arrival(item)

    assert receipt is not None
    assert receipt.document_id == document_id(G22, 4)


async def test_send_status_answers_with_a_receipt_about_the_document(world: World) -> None:
    receipt = await world.recipient.send_status(
        document_id(G22, 5), StatusCode.ACCEPTED, "accepted", sender=H41
    )

    assert receipt.document_id == document_id(G22, 5)
    assert receipt.sender == H41
