"""The adapter client end to end: real broker, broker users per system, a router in this
process, adapters configured as in production."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from urllib.parse import quote

import aio_pika
import aiormq
import pytest
from structlog.testing import capture_logs

from adapters import AdapterClient, AdapterConfig, Receipt, Received, Sealed, processing_order
from backbone.broker.management import ManagementClient
from backbone.edxml import (
    BusinessDocType,
    EdxmlDocument,
    EdxmlStatus,
    StatusCode,
)
from backbone.errors import (
    BrokerUnavailableError,
    CertificateBindingError,
    DirectoryError,
    EdxmlError,
    Reason,
    RoutingError,
    UnknownAgencyError,
)
from backbone.organ import OrganCode
from backbone.xmldsig import verify_edxml
from tests.support import (  # noqa: F401
    HUB,
    Deployment,
    adapter_deployment_fixture,
    document_edxml,
    document_id,
    document_with_attachment,
)

pytestmark = pytest.mark.broker

G22, G01, H41 = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41"
H41_COMMUNE = "000.07.12.H41"
H53, H53_DISTRICT, H53_COMMUNE = "000.00.00.H53", "000.00.32.H53", "000.21.32.H53"


def _statuses(items: list[Received]) -> list[EdxmlStatus]:
    return [item.message for item in items if isinstance(item.message, EdxmlStatus)]


# -- documents ---------------------------------------------------------------------------


async def test_a_document_with_a_3_mib_attachment_arrives_decrypted_and_byte_identical(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    inbox = adapter_deployment.inbox(b)
    pdf = b"%PDF-1.7\n" + os.urandom(3 * 1024 * 1024)

    sealed = a.seal(document_with_attachment(G22, [H41], 1, pdf))
    receipt = await a.publish(sealed)

    [item] = await inbox.wait_for(1, timeout=30)
    assert item.envelope_id == receipt.envelope_id == sealed.header.envelope_id
    assert item.recipient == H41
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.attachments[0].content == pdf
    assert item.message.sender.organ_id == G22
    # Byte-identical to what A signed: the XML-DSig inside verifies over these exact bytes.
    verified = verify_edxml(
        item.edxml, adapter_deployment.exchange.pki.validator(), OrganCode.parse(G22)
    )
    assert verified.sender == OrganCode.parse(G22)
    assert "BEGIN CERTIFICATE" in item.signer_certificate_pem


async def test_a_hub_yields_one_item_per_served_recipient_each_opened_with_its_own_key(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    hub = await adapter_deployment.adapter(HUB)
    inbox = adapter_deployment.inbox(hub)

    await a.send(document_edxml(G22, [H53_DISTRICT, H53_COMMUNE], 2))

    items = await inbox.wait_for(2)
    assert sorted(item.recipient for item in items) == sorted([H53_DISTRICT, H53_COMMUNE])
    assert len({item.envelope_id for item in items}) == 1  # one envelope, one hub inbox copy
    assert await inbox.quiet() == items


async def test_an_agency_behind_a_hub_sends_through_the_hubs_account(
    adapter_deployment: Deployment,
) -> None:
    hub = await adapter_deployment.adapter(HUB)
    g22 = await adapter_deployment.adapter(G22)
    inbox = adapter_deployment.inbox(g22)

    receipt = await hub.send(document_edxml(H53_COMMUNE, [G22], 3))

    [item] = await inbox.wait_for(1)
    assert item.header.sender == H53_COMMUNE
    assert item.envelope_id == receipt.envelope_id
    assert hub.config.broker_account == adapter_deployment.exchange.account_of(H53_COMMUNE)


# -- statuses ----------------------------------------------------------------------------


@pytest.mark.clock
async def test_statuses_01_to_06_reach_the_sender_and_sort_into_the_order_they_were_sent(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)  # auto_arrival: 01 when the document is taken
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    await a.send(document_edxml(G22, [H41], 4))
    [document] = await b_inbox.wait_for(1)
    arrived = await a_inbox.wait_for(1)  # 01 comes after B took the document
    assert [s.status_code for s in _statuses(arrived)] == [StatusCode.ARRIVED]

    sent = [StatusCode.ACCEPTED, StatusCode.ASSIGNED, StatusCode.PROCESSING, StatusCode.COMPLETED]
    for code in sent:  # back to back: the router may relay them in any order
        await b.send_status(document.message.document_id, code)  # type: ignore[union-attr]

    items = sorted(await a_inbox.wait_for(5), key=processing_order)
    statuses = _statuses(items)
    assert [s.status_code for s in statuses] == [StatusCode.ARRIVED, *sent]
    assert {s.sender.organ_id for s in statuses} == {H41}
    assert {s.response_for.document_id for s in statuses} == {document_id(G22, 4)}
    assert {s.response_for.organ_id for s in statuses} == {G22}
    assert all(item.header.kind == "status" for item in items)


async def test_no_arrival_status_is_sent_for_a_status(adapter_deployment: Deployment) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    await a.send(document_edxml(G22, [H41], 5))
    await b_inbox.wait_for(1)
    await a_inbox.wait_for(1)  # 01 from B

    items = await b_inbox.quiet(1.0)
    assert len(items) == 1  # A's adapter answered B's 01 with nothing
    assert await a.acknowledge_arrival((await a_inbox.wait_for(1))[0]) is None


async def test_take_back_request_13_answered_with_15_reaches_the_sender(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    await a.send(document_edxml(G22, [H41], 6))
    await b_inbox.wait_for(1)
    await a_inbox.wait_for(1)  # 01

    # A asks H41 to give the document back: a status from the original sender.
    await a.request_take_back(document_id(G22, 6), [H41], "Xin lấy lại văn bản")
    [_, request] = await b_inbox.wait_for(2)
    assert isinstance(request.message, EdxmlStatus)
    assert request.message.status_code is StatusCode.TAKE_BACK_REQUESTED
    await b.send_status(document_id(G22, 6), StatusCode.REQUEST_AGREED, "Đồng ý thu hồi")

    [_, answer] = await a_inbox.wait_for(2)
    assert isinstance(answer.message, EdxmlStatus)
    assert answer.message.status_code is StatusCode.REQUEST_AGREED
    assert answer.message.description == "Đồng ý thu hồi"


async def test_a_revocation_reaches_the_original_recipients(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    c = await adapter_deployment.adapter(H41_COMMUNE)
    inboxes = [adapter_deployment.inbox(b), adapter_deployment.inbox(c)]
    await a.send(document_edxml(G22, [H41, H41_COMMUNE], 7))
    for inbox in inboxes:
        await inbox.wait_for(1)

    await a.send(document_edxml(G22, [H41, H41_COMMUNE], 7, business=1))

    for inbox in inboxes:
        items = await inbox.wait_for(2)
        kinds = [item.message.business.business_doc_type for item in items]  # type: ignore[union-attr]
        assert kinds == [BusinessDocType.NEW, BusinessDocType.REVOCATION]


# -- refusals before anything is sent ------------------------------------------------------


@pytest.mark.parametrize(
    ("find", "replace", "reason"),
    [
        ("</edXML:Subject>", "</edXML:Subjekt>", Reason.EDXML_NOT_WELL_FORMED),
        ("<edXML:Subject>", "<edXML:Subjectt>", Reason.EDXML_INVALID),
    ],
    ids=["not-well-formed", "invalid"],
)
async def test_malformed_edxml_is_refused_by_seal_naming_its_line(
    adapter_deployment: Deployment, find: str, replace: str, reason: Reason
) -> None:
    a = await adapter_deployment.adapter(G22)
    text = document_edxml(G22, [H41], 8).decode()
    line = text[: text.index(find)].count("\n") + 1
    if reason is Reason.EDXML_INVALID:  # keep it well-formed: rename both tags
        text = text.replace("</edXML:Subject>", "</edXML:Subjectt>")
    broken = text.replace(find, replace, 1).encode()

    with pytest.raises(EdxmlError) as caught:
        a.seal(broken)
    assert caught.value.line == line
    assert caught.value.reason is reason


async def test_seal_refuses_a_from_the_adapter_does_not_serve(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    with pytest.raises(RoutingError, match=H41) as caught:
        a.seal(document_edxml(H41, [G22], 9))
    assert caught.value.reason is Reason.PUBLISHER_MISMATCH


async def test_seal_names_a_recipient_missing_from_the_directory(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    with pytest.raises(UnknownAgencyError, match=r"000\.00\.00\.H99"):
        a.seal(document_edxml(G22, [H41, "000.00.00.H99"], 10))


# -- acknowledgement and bad input on the inbox --------------------------------------------


async def test_an_item_not_followed_by_a_request_for_the_next_is_delivered_again(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    first = await adapter_deployment.adapter(H41, auto_arrival=False)
    receipt = await a.send(document_edxml(G22, [H41], 11))

    stream = first.received()
    item = await anext(stream)
    assert item.envelope_id == receipt.envelope_id
    await stream.aclose()  # a crash before asking for the next: never acked
    await first.close()

    second = await adapter_deployment.adapter(H41, auto_arrival=False)
    [again] = await adapter_deployment.inbox(second).wait_for(1)
    assert again.envelope_id == receipt.envelope_id


async def test_an_envelope_that_can_never_be_opened_is_dead_lettered_not_looped(
    adapter_deployment: Deployment,
) -> None:
    exchange = adapter_deployment.exchange
    b = await adapter_deployment.adapter(H41)
    inbox = adapter_deployment.inbox(b)
    channel = await exchange.channel(exchange.account_of(G22))
    await channel.default_exchange.publish(
        aio_pika.Message(b"VDX1 not an envelope", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=exchange.names.inbox_queue(H41),
    )

    parked = await exchange.drain(exchange.names.dead_letter_parked, expect=1)
    assert [m.body for m in parked] == [b"VDX1 not an envelope"]
    assert await inbox.quiet() == []


async def test_after_the_broker_drops_both_connections_a_resend_of_the_same_sealed_arrives_once(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    inbox = adapter_deployment.inbox(b)
    sealed = a.seal(document_edxml(G22, [H41], 12))

    with capture_logs() as logs:
        await _drop_connections_of(a.config.broker_account, b.config.broker_account)
        receipt = await _publish_until_accepted(a, sealed)
        [item] = await inbox.wait_for(1, timeout=30)
    assert item.envelope_id == receipt.envelope_id == sealed.header.envelope_id
    assert len(await inbox.quiet()) == 1
    reconnected = {entry.get("system") for entry in logs if entry["event"] == "adapter.reconnected"}
    assert reconnected == {G22, H41}


async def test_the_recipient_consumes_its_inbox_again_after_the_broker_cancels_its_consumer(
    adapter_deployment: Deployment,
) -> None:
    # The inbox is consumed through aiormq (``backbone.broker.direct_consume``). The broker
    # cancels a consumer with a basic.cancel frame (its queue deleted; RabbitMQ sends none for
    # a deleted quorum queue, so the test plays that frame): the consumer gone at the broker,
    # the adapter checks that its inbox is there and consumes it again.
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    inbox = adapter_deployment.inbox(b)
    await a.send(document_edxml(G22, [H41], 16))
    await inbox.wait_for(1)
    [consumer] = b._inbox.consumers
    underlay = await consumer._underlay()
    await underlay.basic_cancel(consumer._tag)  # gone at the broker, as after its cancel

    with capture_logs() as logs:
        consumer._on_cancel(aiormq.spec.Basic.Cancel(consumer_tag=consumer._tag))
        receipt = await a.send(document_edxml(G22, [H41], 17))
        items = await inbox.wait_for(2, timeout=30)
    assert items[1].envelope_id == receipt.envelope_id
    assert "adapter.consuming_again" in [entry["event"] for entry in logs]


async def _drop_connections_of(*accounts: str) -> None:
    management = ManagementClient.from_env()
    names: list[str] = []
    for _ in range(100):  # the management API lists new connections after a moment
        connections = await management._call("GET", "/api/connections")
        names = [c["name"] for c in connections if c.get("user") in accounts]
        if {c.get("user") for c in connections if c["name"] in names} == set(accounts):
            break
        await asyncio.sleep(0.2)
    assert names, f"no connection of {accounts} listed by the management API"
    for name in names:
        await management._call("DELETE", f"/api/connections/{quote(name, safe='')}")


async def _publish_until_accepted(client: AdapterClient, sealed: Sealed) -> Receipt:
    """What a caller does with BrokerUnavailableError: publish the same Sealed again."""
    for _ in range(100):
        try:
            return await client.publish(sealed)
        except BrokerUnavailableError:
            await asyncio.sleep(0.2)
    raise AssertionError("the broker never took the envelope back")


async def test_publish_on_a_closed_client_raises_broker_unavailable(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    sealed = a.seal(document_edxml(G22, [H41], 13))
    await a.close()
    with pytest.raises(BrokerUnavailableError):
        await a.publish(sealed)


async def test_a_publish_the_broker_returns_unrouted_raises_broker_unavailable(
    adapter_deployment: Deployment,
) -> None:
    exchange = adapter_deployment.exchange
    names = exchange.names
    a = await adapter_deployment.adapter(G22)
    sealed = a.seal(document_edxml(G22, [H41], 15))
    connection = await aio_pika.connect(exchange.amqp_url)
    try:
        channel = await connection.channel()
        inbound = await channel.get_queue(names.inbound_queue, ensure=False)
        await inbound.unbind(names.submit_exchange, routing_key=names.submit_routing_key)
        with pytest.raises(BrokerUnavailableError, match="the broker returned it"):
            await a.publish(sealed)
    finally:
        await connection.close()


async def test_a_publish_while_the_connection_is_lost_fails_as_broker_unavailable_or_lands_once(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22)
    b = await adapter_deployment.adapter(H41)
    inbox = adapter_deployment.inbox(b)
    sealed = a.seal(document_edxml(G22, [H41], 16))

    await _drop_connections_of(a.config.broker_account)
    for _ in range(500):  # until the client has seen its connection go
        if await a.broker_problem() is not None:
            break
        await asyncio.sleep(0.01)
    # The channel closed: BrokerUnavailableError (never aiormq's own errors); the robust
    # connection already back: published on the restored channel, as through aio-pika.
    refused: str | None = None
    try:
        receipt = await a.publish(sealed)
    except BrokerUnavailableError as error:
        refused = str(error)
        receipt = await _publish_until_accepted(a, sealed)  # the same Sealed again
    assert refused is None or "not accepted by the broker" in refused
    [item] = await inbox.wait_for(1, timeout=30)
    assert item.envelope_id == receipt.envelope_id
    assert len(await inbox.quiet()) == 1


# -- configuration -----------------------------------------------------------------------


async def test_config_refuses_an_agency_served_by_another_system(
    adapter_deployment: Deployment,
) -> None:
    config = adapter_deployment.config(HUB, [H53, H41])
    with pytest.raises(DirectoryError, match=H41):
        config.resolve()


async def test_config_refuses_a_key_that_is_not_the_certificates(
    adapter_deployment: Deployment,
) -> None:
    pki = adapter_deployment.exchange.pki
    config = adapter_deployment.config(G22)
    wrong = config.model_copy(
        update={
            "agencies": (config.agencies[0].model_copy(update={"key": pki.agency(H41).key_path}),)
        }
    )
    with pytest.raises(CertificateBindingError):
        wrong.resolve()


async def test_config_loads_from_yaml_with_the_environment_over_it(
    adapter_deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    config = adapter_deployment.config(G22)
    data = config.model_dump(mode="json")
    data["amqp_url"] = config.amqp_url.get_secret_value()
    path = tmp_path / "adapter.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("VDX_PREFETCH", "7")

    loaded = AdapterConfig.load(path)
    assert loaded.prefetch == 7
    assert loaded.system == G22
    assert loaded.broker_account == adapter_deployment.exchange.account_of(G22)
    assert adapter_deployment.exchange.passwords[loaded.broker_account] not in repr(loaded)
    assert loaded.resolve().agencies[G22].organ_code == G22
