"""The end-to-end smoke path that exists so far, on the real broker.

A commune sends a document to a ministry: development PKI, a four-tier directory with a
provincial hub, edXML built and signed (XML-DSig), sealed for its recipient, published with
publisher confirms, consumed, checked as the router will check it, opened by the recipient,
its XML signature verified, acknowledged. Every step prints what it did.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import aio_pika
import typer

from backbone import envelope, xmldsig
from backbone.broker.discovery import discover_broker
from backbone.directory import DirectoryBuilder
from backbone.edxml import (
    Business,
    BusinessDocType,
    Code,
    DocumentType,
    EdxmlDocument,
    Kind,
    Organization,
    PromulgationInfo,
    build,
    validate,
)
from backbone.organ import OrganCode
from backbone.pki.ca import DevCA
from backbone.pki.validation import CertificateValidator, load_crl_file

__all__ = ["run"]

COMMUNE = "000.21.32.H53"  # UBND xã, under district 32 of Tây Ninh
MINISTRY = "000.00.00.G22"  # the Government Office
HUB = "00.53.W00"  # Tây Ninh's provincial integration platform (LGSP)


def _step(text: str) -> None:
    typer.echo(f"  ✓ {text}")


def _document() -> bytes:
    today = date.today()
    document = EdxmlDocument(
        sender=Organization(organ_id=COMMUNE, organ_name="UBND xã Tân Bình"),
        recipients=(Organization(organ_id=MINISTRY, organ_name="Văn phòng Chính phủ"),),
        document_id=f"{COMMUNE},{today:%Y/%m/%d},15/UBND-VP",
        code=Code(code_number="15", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Tây Ninh", promulgation_date=today),
        document_type=DocumentType(type="1", type_name="Công văn"),
        subject="V/v báo cáo kết quả liên thông văn bản",
        business=Business(business_doc_type=BusinessDocType.NEW),
    )
    return build(document)


async def _round_trip(amqp_url: str, body: bytes) -> bytes:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(
            f"demo.inbox.{uuid.uuid4()}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.name,
            )
            _step(f"published {len(body)} bytes with a publisher confirm")
            message = await queue.get(timeout=10, fail=True)
            assert message is not None
            received = message.body
            await message.ack()
            _step("consumed and acknowledged")
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    return received


def run() -> None:
    """Run the smoke path; raises on the first step that fails."""
    endpoint = discover_broker(container=True)
    typer.echo(f"broker: {endpoint.source}")
    try:
        with tempfile.TemporaryDirectory(prefix="vdx-demo-") as tmp:
            ca = DevCA.init(Path(tmp) / "pki")
            commune = ca.issue(COMMUNE, name="UBND xã Tân Bình")
            ministry = ca.issue(MINISTRY, name="Văn phòng Chính phủ")
            validator = CertificateValidator([ca.certificate], crls=[load_crl_file(ca.crl_path)])
            _step("development CA created; certificates issued to a commune and a ministry")

            directory = (
                DirectoryBuilder()
                .hub(HUB, "000.00.00.H53")
                .via_hub("000.00.00.H53", HUB, name="UBND tỉnh Tây Ninh")
                .via_hub("000.00.32.H53", HUB, name="UBND huyện")
                .via_hub(COMMUNE, HUB, name="UBND xã Tân Bình")
                .direct(MINISTRY, name="Văn phòng Chính phủ")
                .build()
            )
            sender_code = OrganCode.parse(COMMUNE)
            _step(
                f"directory: {COMMUNE} is tier {directory.tier_of(sender_code).number}, "
                f"routing key {sender_code.routing_key}, served by "
                f"{getattr(directory.serving_system(COMMUNE), 'id', COMMUNE)}"
            )

            signed = xmldsig.sign_edxml(_document(), commune.key, commune.certificate)
            message = validate(signed)
            assert isinstance(message, EdxmlDocument)
            _step(f"edXML built, signed (XML-DSig) and valid: {message.document_id}")

            body = envelope.seal(
                signed,
                kind=Kind.DOCUMENT,
                sender=COMMUNE,
                sender_key=commune.key,
                sender_cert=commune.certificate,
                recipients={MINISTRY: ministry.certificate},
                document_id=message.document_id,
                business_type=int(BusinessDocType.NEW),
                validator=validator,
            )
            _step("sealed: AES-256-GCM payload, RSA-OAEP-256 key wrap, RSASSA-PSS header")

            received = asyncio.run(_round_trip(endpoint.url, body))
            verified = envelope.verify(received, validator)
            _step(f"router check passed for envelope {verified.header.envelope_id}")
            opened = envelope.decrypt(verified, recipient=MINISTRY, recipient_key=ministry.key)
            proof = xmldsig.verify_edxml(opened.edxml, validator, sender_code)
            _step(f"opened by {MINISTRY}; XML signature proves origin {proof.sender}")
    finally:
        endpoint.stop()
    typer.echo(f"smoke path complete at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
