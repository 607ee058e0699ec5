"""The gateway end to end, driven the way the vendor SDK drives the axis (testkit.vxp_client
reproduces its wire format), through the real broker and router."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import pytest

from backbone.edxml import StatusCode
from testkit import Deployment, document_edxml, document_id, status_edxml
from testkit.vxp_client import SdkClient
from tests.support import adapter_deployment_fixture  # noqa: F401
from tests.support.gateway import call, running_gateway, until

pytestmark = pytest.mark.clock  # document ids carry the Vietnam date, from backbone.clock

A, B = "000.00.00.G22", "000.00.00.H41"


async def test_a_round_trip_through_two_gateways_as_the_sdk_drives_them(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    async with (
        running_gateway(adapter_deployment, A, tmp_path / "a") as gateway_a,
        running_gateway(adapter_deployment, B, tmp_path / "b") as gateway_b,
    ):
        sender, recipient = gateway_a.sdk(), gateway_b.sdk()
        document = document_edxml(A, [B], 1)

        sent = await call(sender.send_edoc, document, sender=A)
        assert sent is not None
        assert (sent["status"], sent["ErrorCode"]) == ("OK", "0"), sent
        again = await call(sender.send_edoc, document, sender=A)
        assert again is not None
        assert again["DocId"] == sent["DocId"]

        listing = await until(recipient.received_list, lambda r: len(r["data"]) == 1)
        [item] = listing["data"]
        assert (item["from"], item["to"], item["messageType"]) == (A, B, "edoc")
        fetched = await call(recipient.get_edoc, item["docId"])
        assert fetched is not None
        assert fetched["status"] == "OK"
        received = base64.b64decode(fetched["data"])
        # The file A's software sent, byte for byte, with A's signature put in.
        assert re.sub(rb"<ds:Signature\b.*?</ds:Signature>", b"", received, flags=re.S) == document
        downloaded = await call(recipient.download, item["docId"])
        assert downloaded.content == received

        # No 01 before the software has taken it.
        await asyncio.sleep(0.5)
        statuses = await call(sender.received_list, "status")
        assert statuses is not None
        assert statuses["data"] == []
        done = await call(recipient.update_status, item["docId"], "done")
        assert done is not None
        assert done["status"] == "OK", done
        after = await call(recipient.received_list)
        assert after is not None
        assert after["data"] == []

        arrived = await until(lambda: sender.received_list("status"), lambda r: len(r["data"]) == 1)
        [status_01] = arrived["data"]
        edxml_01 = base64.b64decode((await call(sender.get_edoc, status_01["docId"]))["data"])  # type: ignore[index]
        assert b"<edXML:StatusCode>01</edXML:StatusCode>" in edxml_01
        await call(sender.update_status, status_01["docId"], "done")

        accepted = status_edxml(B, document_id(A, 1), StatusCode.ACCEPTED, "Đã tiếp nhận")
        answer = await call(recipient.send_edoc, accepted, sender=B, message_type="status")
        assert answer is not None
        assert answer["status"] == "OK", answer
        await until(
            lambda: sender.received_list("status"),
            lambda r: [x["from"] for x in r["data"]] == [B],
        )
        sent_list = await until(
            lambda: sender.sent_list(sent["DocId"]),
            lambda r: r["data"] and r["data"][0]["receiveStatus"] == "03",
        )
        [row] = sent_list["data"]
        assert (row["fromCode"], row["toCode"], row["sendStatus"]) == (A, B, "routed")
        assert row["title"] == "Văn bản số 1"
        assert row["receiverDocId"] == item["docId"]


async def test_a_request_signed_with_another_secret_is_refused_with_its_code(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    async with running_gateway(adapter_deployment, A, tmp_path / "a") as gateway:
        forger = SdkClient(gateway.endpoint, gateway.system_id, "not-the-secret", gateway.sdk().now)
        refused = await call(forger.received_list)
        assert refused is not None
        assert (refused["status"], refused["ErrorCode"]) == ("FAIL", "gateway_signature_invalid")
        fine = await call(gateway.sdk().received_list)
        assert fine is not None
        assert fine["status"] == "OK"


HUB = "00.53.W00"
H53_DISTRICT, H53_COMMUNE, H53_UNIT = "000.00.32.H53", "000.21.32.H53", "001.21.32.H53"
MARKER = "PLAINTEXT-MARKER-9f2c"


async def test_a_fan_out_reaches_a_hub_serving_two_agencies_and_a_direct_one_end_to_end_encrypted(
    adapter_deployment: Deployment, tmp_path: Path
) -> None:
    spy = await _spy_on_submissions(adapter_deployment)
    async with (
        running_gateway(adapter_deployment, A, tmp_path / "a") as gateway_a,
        running_gateway(adapter_deployment, B, tmp_path / "b") as gateway_b,
        running_gateway(
            adapter_deployment, HUB, tmp_path / "hub", acts_for=[H53_DISTRICT, H53_COMMUNE]
        ) as hub,
    ):
        sender, direct, hub_software = gateway_a.sdk(), gateway_b.sdk(), hub.sdk()
        recipients = [B, H53_DISTRICT, H53_COMMUNE]
        document = document_edxml(A, recipients, 7, subject=f"Công văn {MARKER}")
        sent = await call(sender.send_edoc, document, sender=A)
        assert sent is not None
        assert sent["status"] == "OK", sent

        at_hub = await until(hub_software.received_list, lambda r: len(r["data"]) == 2)
        assert sorted(item["to"] for item in at_hub["data"]) == [H53_DISTRICT, H53_COMMUNE]
        at_b = await until(direct.received_list, lambda r: len(r["data"]) == 1)
        for software, item in [
            (direct, at_b["data"][0]),
            *[(hub_software, i) for i in at_hub["data"]],
        ]:
            fetched = await call(software.get_edoc, item["docId"])
            assert fetched is not None
            assert MARKER.encode() in base64.b64decode(fetched["data"])
            done = await call(software.update_status, item["docId"], "done")
            assert done is not None
            assert done["status"] == "OK"

        rows = await until(
            lambda: sender.sent_list(sent["DocId"]),
            lambda r: (
                len(r["data"]) == 3
                and all(
                    row["sendStatus"] == "routed" and row["receiveStatus"] == "01"
                    for row in r["data"]
                )
            ),
        )
        assert sorted(row["toCode"] for row in rows["data"]) == sorted(recipients)
        # The hub's software acts only for the agencies configured for it.
        other = document_edxml(H53_UNIT, [A], 8)
        refused = await call(hub_software.send_edoc, other, sender=H53_UNIT)
        assert refused is not None
        assert refused["ErrorCode"] == "gateway_sender_not_permitted"

    # Neither the broker's messages nor the router's store ever held the plaintext.
    bodies = await spy()
    assert bodies, "the spy queue saw the envelopes"
    for body in bodies:
        assert MARKER.encode() not in body
        assert base64.b64encode(MARKER.encode()) not in body
    stores = list(tmp_path.glob("router.db*"))  # the deployment's router store, with its WAL
    assert stores
    for path in stores:
        assert MARKER.encode() not in path.read_bytes(), path


async def _spy_on_submissions(deployment: Deployment) -> Callable[[], Awaitable[list[bytes]]]:
    """A queue bound beside the router's to the submit exchange: a copy of every envelope
    as the broker carries it; the returned function drains it."""
    connection = await aio_pika.connect(deployment.exchange.amqp_url)
    channel = await connection.channel()
    names = deployment.exchange.names
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(names.submit_exchange, routing_key=names.submit_routing_key)

    async def drain() -> list[bytes]:
        bodies = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            bodies.append(message.body)
        await connection.close()
        return bodies

    return drain
