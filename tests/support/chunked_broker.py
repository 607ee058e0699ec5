"""Chunked documents on the real broker (issue 18): a sending system's account publishing
hand-made chunked messages, as a faulty, hostile or restarted sender would, and signed
documents sealed in 1 MiB chunks from G22 to H41."""

from __future__ import annotations

import asyncio
import os
import uuid

import aio_pika

from adapters import AdapterClient
from backbone.edxml import EdxmlDocument, validate
from backbone.envelope import Kind, SealParties
from backbone.envelope.chunked import ChunkLimits
from backbone.envelope.split import SealedDocument, seal_file
from backbone.wire import FORM_CHUNK, FORM_CHUNKED_HEADER, Event, EventType, envelope_message
from backbone.xmldsig import sign_edxml
from testkit.deployment import Deployment
from testkit.documents import document_with_attachment

__all__ = ["G22", "H41", "MiB", "RawPublisher", "large_document", "next_event", "sealed_document"]

G22, H41 = "000.00.00.G22", "000.00.00.H41"
MiB = 1 << 20


def large_document(number: int, annex_bytes: int) -> tuple[bytes, bytes]:
    """An edXML document from G22 to H41 carrying an annex of ``annex_bytes`` random bytes
    (base64 inside the file, a third larger); the document and the annex."""
    annex = b"%PDF-1.7\n" + os.urandom(annex_bytes)
    return document_with_attachment(G22, [H41], number, annex), annex


def sealed_document(
    deployment: Deployment, number: int, annex_bytes: int = int(2.5 * MiB)
) -> SealedDocument:
    """A signed document from G22 to H41 (by default about 3.4 MiB), sealed in 1 MiB
    chunks."""
    edxml, _ = large_document(number, annex_bytes)
    pki = deployment.exchange.pki
    signer = pki.agency(G22)
    path = deployment.root / f"signed-{number}.xml"
    path.write_bytes(sign_edxml(edxml, signer.key, signer.certificate))
    message = validate(edxml)
    assert isinstance(message, EdxmlDocument)
    return seal_file(
        path,
        SealParties(
            kind=Kind.DOCUMENT,
            sender=G22,
            sender_key=signer.key,
            sender_cert=signer.certificate,
            recipients={H41: pki.agency(H41).certificate},
            document_id=message.document_id,
            business_type=0,
            message=message,
        ),
        limits=ChunkLimits(chunk_bytes=MiB),
    )


class RawPublisher:
    """G22's broker account publishing hand-made chunked messages."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self.account = deployment.exchange.account_of(G22)

    async def __aenter__(self) -> RawPublisher:
        exchange = self._deployment.exchange
        self._connection = await aio_pika.connect(exchange.url_for(self.account))
        channel = await self._connection.channel(publisher_confirms=True)
        self._submit = await channel.get_exchange(exchange.names.submit_exchange, ensure=False)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    async def header(self, document: SealedDocument) -> None:
        await self._publish(document, document.header_message, FORM_CHUNKED_HEADER, None)

    async def chunk(self, document: SealedDocument, index: int, body: bytes) -> None:
        await self._publish(document, body, FORM_CHUNK, index)

    async def chunks(self, document: SealedDocument, indexes: range | None = None) -> None:
        """Its chunks at ``indexes`` (all by default), in order, each confirmed."""
        for index, body in enumerate(document.chunk_messages()):
            if indexes is None or index in indexes:
                await self.chunk(document, index, body)

    async def _publish(
        self, document: SealedDocument, body: bytes, form: str, index: int | None
    ) -> None:
        names = self._deployment.exchange.names
        await self._submit.publish(
            envelope_message(
                body,
                document.header,
                message_id=str(uuid.uuid4()),
                user_id=self.account,
                form=form,
                chunk_index=index,
            ),
            # As the adapter does: chunks to the chunk queue, the header with the envelopes.
            routing_key=names.chunk_routing_key if form == FORM_CHUNK else names.submit_routing_key,
            mandatory=True,
        )


async def next_event(client: AdapterClient, kind: EventType) -> Event:
    """The next event of ``kind`` about what ``client`` sent (other events skipped)."""
    iterator = aiter(client.events())
    try:
        while True:
            event = await asyncio.wait_for(anext(iterator), 30)
            if event.type is kind:
                return event
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]
