"""Chunked documents end to end (issue 18): adapter → router → adapter on the real broker,
with the router of the other adapter-client tests."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters import AdapterClient, Received
from backbone.edxml import EdxmlDocument, EdxmlStatus, StatusCode
from backbone.errors import BrokerUnavailableError, Reason
from backbone.organ import OrganCode
from backbone.wire import (
    EventType,
)
from backbone.xmldsig import verify_edxml
from tests.support import (  # noqa: F401
    Deployment,
    adapter_deployment_fixture,
    open_deployment,
)
from tests.support.chunked_broker import (
    G22,
    H41,
    MiB,
    RawPublisher,
    large_document,
    next_event,
    sealed_document,
)

pytestmark = pytest.mark.broker

CHUNKS = {"chunk_bytes": MiB}


async def _pair(deployment: Deployment) -> tuple[AdapterClient, AdapterClient]:
    a = await deployment.adapter(G22, settings=CHUNKS)
    b = await deployment.adapter(H41, settings=CHUNKS)
    return a, b


def _statuses(items: list[Received]) -> list[EdxmlStatus]:
    return [item.message for item in items if isinstance(item.message, EdxmlStatus)]


async def test_a_20_mib_document_in_1_mib_chunks_arrives_byte_identical_and_01_goes_back(
    adapter_deployment: Deployment,
) -> None:
    a, b = await _pair(adapter_deployment)
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    edxml, annex = large_document(1, 15 * MiB)
    path = adapter_deployment.root / "large.xml"
    path.write_bytes(edxml)
    assert len(edxml) > 20 * MiB

    receipt = await a.send_file(path)

    [item] = await b_inbox.wait_for(1, timeout=120)
    assert item.envelope_id == receipt.envelope_id
    assert item.header.chunk_count >= 20  # type: ignore[attr-defined]
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.attachments[0].content == annex
    # Byte-identical to what A signed: its XML-DSig verifies over these exact bytes.
    verified = verify_edxml(
        item.edxml, adapter_deployment.exchange.pki.validator(), OrganCode.parse(G22)
    )
    assert verified.sender == OrganCode.parse(G22)
    arrived = await a_inbox.wait_for(1, timeout=60)
    assert [s.status_code for s in _statuses(arrived)] == [StatusCode.ARRIVED]
    assert arrived[0].header.document_id == receipt.document_id
    await _no_files_left(adapter_deployment.root / "staging" / H41)


async def test_a_vendors_file_arrives_as_its_own_bytes_with_the_signature_in_its_placeholder(
    adapter_deployment: Deployment,
) -> None:
    # CRLF, a character reference and a placeholder: libxml2 writing the signed tree would
    # give other bytes (the character itself); the sender splices the signature into these.
    a, b = await _pair(adapter_deployment)
    b_inbox = adapter_deployment.inbox(b)
    edxml, annex = large_document(4, 2 * MiB)
    placeholder = b"<edXML:Signature />"
    edxml = (
        edxml.replace("Văn bản số".encode(), "Văn bản s&#7889;".encode())
        .replace(b"<edXML:TraceHeaderList>", placeholder + b"\n      <edXML:TraceHeaderList>")
        .replace(b"\n", b"\r\n")
    )
    path = adapter_deployment.root / "vendor.xml"
    path.write_bytes(edxml)

    await a.send_file(path)

    [item] = await b_inbox.wait_for(1, timeout=120)
    signature = re.search(rb"<ds:Signature\b.*?</ds:Signature>", item.edxml, re.S)
    assert signature is not None
    start, end = signature.span()
    assert item.edxml[:start] + placeholder + item.edxml[end:] == edxml
    verify_edxml(item.edxml, adapter_deployment.exchange.pki.validator(), OrganCode.parse(G22))
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.attachments[0].content == annex


async def test_a_send_cut_off_by_the_broker_mid_document_is_finished_as_the_same_envelope(
    adapter_deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sealing again would be another envelope of the same document (duplicate_conflict):
    # the kept messages are published again from the first the broker did not confirm.
    a, b = await _pair(adapter_deployment)
    b_inbox = adapter_deployment.inbox(b)
    edxml, annex = large_document(3, 6 * MiB)
    path = adapter_deployment.root / "cut.xml"
    path.write_bytes(edxml)
    sender = a._sender  # the broker failure is injected at its publish
    publish = sender._publish_body
    published: list[int | None] = []

    async def broker_gone_at_chunk_4(*args: Any, chunk_index: int | None = None, **kw: Any) -> None:
        if chunk_index == 4 and not published.count(4):
            published.append(4)
            raise BrokerUnavailableError("injected: no confirm")
        published.append(chunk_index)
        await publish(*args, chunk_index=chunk_index, **kw)

    monkeypatch.setattr(sender, "_publish_body", broker_gone_at_chunk_4)
    with pytest.raises(BrokerUnavailableError):
        await a.send_file(path)
    pending = adapter_deployment.root / "staging" / G22 / "outgoing" / "pending"
    [kept] = list(pending.iterdir())
    assert (kept / "confirmed").read_text() == "5"  # the header and chunks 0-3
    assert not list(kept.parent.parent.glob("*.xml"))  # the signed file went once sealed

    # The window may have published chunks after 4 before its failure came back: never
    # counted as confirmed, they go again.
    assert published[:6] == [None, 0, 1, 2, 3, 4]
    first_attempt = len(published)
    with capture_logs() as logs:
        receipt = await a.send_file(path)

    [item] = await b_inbox.wait_for(1, timeout=120)
    # Resumed at chunk 4, never the header or a confirmed chunk again, nothing sealed anew.
    chunks = item.header.chunk_count  # type: ignore[attr-defined]
    assert published[first_attempt:] == list(range(4, chunks))
    assert [e for e in logs if e["event"] == "adapter.sealed"] == []
    assert next(e for e in logs if e["event"] == "adapter.send_resumed")["confirmed"] == 5
    assert item.envelope_id == receipt.envelope_id
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.attachments[0].content == annex
    assert await b_inbox.quiet(1.0) == [item]
    assert not list(pending.iterdir())  # reclaimed once the last chunk was confirmed


# -- hostile and repeated chunks ------------------------------------------------------------


async def test_a_corrupted_chunk_is_refused_as_tampered_and_the_sender_told_then_resent(
    adapter_deployment: Deployment,
) -> None:
    a, b = await _pair(adapter_deployment)
    b_inbox = adapter_deployment.inbox(b)
    sealed = sealed_document(adapter_deployment, 2)
    chunks = list(sealed.chunk_messages())
    assert len(chunks) >= 3
    corrupted = bytearray(chunks[1])
    corrupted[-1] ^= 0x01

    async with RawPublisher(adapter_deployment) as publisher:
        await publisher.header(sealed)
        await publisher.chunk(sealed, 0, chunks[0])
        await publisher.chunk(sealed, 1, bytes(corrupted))
        refusal = await next_event(a, EventType.REJECTED)
        assert refusal.reason is Reason.CHUNK_TAMPERED
        assert refusal.envelope_id == sealed.header.envelope_id
        assert "chunk 1" in (refusal.message or "")
        assert await b_inbox.quiet() == []  # nothing handed out from an incomplete document
        # The refused chunk sent again as signed: the document completes, once.
        for index in range(1, len(chunks)):
            await publisher.chunk(sealed, index, chunks[index])

    [item] = await b_inbox.wait_for(1, timeout=60)
    assert item.envelope_id == sealed.header.envelope_id
    assert await b_inbox.quiet() == [item]


async def test_chunks_whose_header_never_comes_are_refused_as_foreign_without_holding_up_others(
    amqp_url: str, tmp_path: Path
) -> None:
    # More early or foreign chunks than the router takes at a time (chunk_prefetch, 4):
    # each is put back behind the queue while it waits, never held for the whole wait.
    async with open_deployment(
        amqp_url, tmp_path, router_options={"chunk_header_wait_seconds": 12.0}
    ) as deployment:
        a, b = await _pair(deployment)
        b_inbox = deployment.inbox(b)
        orphan, document = sealed_document(deployment, 10), sealed_document(deployment, 11)
        loop = asyncio.get_running_loop()
        async with RawPublisher(deployment) as publisher:
            for _ in range(2):
                await publisher.chunks(orphan)  # its header never sent: 8 chunks
            started = loop.time()
            await publisher.header(document)
            await publisher.chunks(document)
            [item] = await b_inbox.wait_for(1, timeout=30)
            arrived = loop.time() - started
            refusal = await next_event(a, EventType.REJECTED)
            assert await b_inbox.quiet() == [item]  # nothing of the orphan handed out

    assert item.envelope_id == document.header.envelope_id
    # Held 12 s four at a time, the orphans would have kept it waiting 24 s.
    assert arrived < 8, f"the document took {arrived:.1f} s behind the waiting chunks"
    assert refusal.reason is Reason.CHUNK_FOREIGN
    assert orphan.header.envelope_id in (refusal.message or "")
    # The event names the envelope the chunk named, so the sending adapter can link it.
    assert refusal.envelope_id == orphan.header.envelope_id


async def test_a_duplicate_chunk_is_dropped_and_the_document_delivered_once(
    adapter_deployment: Deployment,
) -> None:
    _, b = await _pair(adapter_deployment)
    b_inbox = adapter_deployment.inbox(b)
    sealed = sealed_document(adapter_deployment, 4)
    chunks = list(sealed.chunk_messages())

    with capture_logs() as logs:
        async with RawPublisher(adapter_deployment) as publisher:
            await publisher.header(sealed)
            await publisher.chunk(sealed, 0, chunks[0])
            await publisher.chunk(sealed, 0, chunks[0])  # the same chunk again
            for index in range(1, len(chunks)):
                await publisher.chunk(sealed, index, chunks[index])
        [item] = await b_inbox.wait_for(1, timeout=60)
        assert await b_inbox.quiet() == [item]

    assert item.envelope_id == sealed.header.envelope_id
    # Dropped by the router when the first copy had passed, else by the recipient.
    dropped = [
        e
        for e in logs
        if e["event"] in ("router.chunk_duplicate_dropped", "adapter.chunk_duplicate_dropped")
    ]
    assert [(e["envelope_id"], e["chunk"]) for e in dropped] == [(sealed.header.envelope_id, 0)]


class _Clock:
    """The recipient's staging clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.clock
async def test_an_incomplete_document_expires_its_staging_is_reclaimed_and_the_sender_told(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22, settings=CHUNKS)
    clock = _Clock()
    b = await adapter_deployment.adapter(
        H41, settings={**CHUNKS, "staging_timeout_seconds": 1.0}, clock=clock
    )
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    sealed = sealed_document(adapter_deployment, 5)
    chunks = list(sealed.chunk_messages())
    staged = adapter_deployment.root / "staging" / H41 / "incoming"

    async with RawPublisher(adapter_deployment) as publisher:
        await publisher.header(sealed)
        await publisher.chunk(sealed, 0, chunks[0])  # the others never come
    document = staged / sealed.header.envelope_id
    for _ in range(200):
        if (document / "00000.chunk").exists():
            break
        await asyncio.sleep(0.05)
    assert (document / "00000.chunk").exists()
    await asyncio.sleep(0.6)  # expiry looked at least twice: not expired by the clock yet
    assert document.exists()

    clock.now += timedelta(seconds=2)
    [answer] = await a_inbox.wait_for(1, timeout=30)

    [status] = _statuses([answer])
    assert status.status_code is StatusCode.REJECTED
    assert status.response_for.document_id == sealed.header.document_id
    assert (status.description or "").startswith("[document_incomplete]")
    assert f"{len(chunks) - 1} of its {len(chunks)} chunks" in (status.description or "")
    assert not document.exists()
    assert await b_inbox.quiet() == []


async def test_a_sender_over_its_open_chunked_documents_is_refused_until_one_finishes(
    amqp_url: str, tmp_path: Path
) -> None:
    async with open_deployment(
        amqp_url, tmp_path, router_options={"max_open_chunked_per_sender": 1}
    ) as deployment:
        a = await deployment.adapter(G22, settings=CHUNKS)
        b = await deployment.adapter(H41, settings=CHUNKS)
        b_inbox = deployment.inbox(b)
        first, second = sealed_document(deployment, 6), sealed_document(deployment, 7)
        first_chunks = list(first.chunk_messages())

        async with RawPublisher(deployment) as publisher:
            await publisher.header(first)  # under way: its chunks still to come
            await publisher.header(second)
            refusal = await next_event(a, EventType.REJECTED)
            assert refusal.reason is Reason.TOO_MANY_OPEN_DOCUMENTS
            assert refusal.envelope_id == second.header.envelope_id
            assert "max_open_chunked_per_sender" in (refusal.message or "")

            for index, chunk in enumerate(first_chunks):
                await publisher.chunk(first, index, chunk)
            [item] = await b_inbox.wait_for(1, timeout=60)
            assert item.envelope_id == first.header.envelope_id
            # The router keeps nothing of a finished document, and nothing was claimed for
            # the refused one: sent again, it goes through.
            assert len(deployment.router._chunked) == 0
            await publisher.header(second)
            for index, chunk in enumerate(second.chunk_messages()):
                await publisher.chunk(second, index, chunk)
            items = await b_inbox.wait_for(2, timeout=60)
        assert [i.envelope_id for i in items] == [e.header.envelope_id for e in (first, second)]


async def test_a_document_over_the_staging_budget_is_refused_with_02_and_nothing_kept(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22, settings=CHUNKS)
    b = await adapter_deployment.adapter(H41, settings={**CHUNKS, "staging_budget_bytes": MiB})
    a_inbox, b_inbox = adapter_deployment.inbox(a), adapter_deployment.inbox(b)
    edxml, _ = large_document(8, 2 * MiB)

    with capture_logs() as logs:
        receipt = await a.send(edxml)
        [answer] = await a_inbox.wait_for(1, timeout=30)
        assert await b_inbox.quiet() == []

    [status] = _statuses([answer])
    assert status.status_code is StatusCode.REJECTED
    assert status.response_for.document_id == receipt.document_id
    assert (status.description or "").startswith("[staging_full]")
    assert list((adapter_deployment.root / "staging" / H41 / "incoming").iterdir()) == []
    # Its chunks are dropped as they come, not dead-lettered one by one.
    dropped = {e["chunk"] for e in logs if e["event"] == "adapter.chunk_of_refused_dropped"}
    assert dropped == {0, 1, 2}  # about 2.7 MiB of edXML in 1 MiB chunks


async def test_a_chunked_document_not_followed_by_a_request_for_the_next_is_delivered_again(
    adapter_deployment: Deployment,
) -> None:
    a = await adapter_deployment.adapter(G22, settings=CHUNKS)
    first = await adapter_deployment.adapter(H41, settings=CHUNKS, auto_arrival=False)
    edxml, annex = large_document(9, 2 * MiB)
    receipt = await a.send(edxml)

    stream = first.received()
    item = await asyncio.wait_for(anext(stream), 30)
    assert item.envelope_id == receipt.envelope_id
    await stream.aclose()  # a crash before asking for the next: never acked
    await first.close()

    # Another client on the same staging directory, as after a restart.
    second = await adapter_deployment.adapter(H41, settings=CHUNKS, auto_arrival=False)
    [again] = await adapter_deployment.inbox(second).wait_for(1, timeout=30)
    assert again.envelope_id == receipt.envelope_id
    assert isinstance(again.message, EdxmlDocument)
    assert again.message.attachments[0].content == annex
    await _no_files_left(adapter_deployment.root / "staging" / H41)


async def _no_files_left(staging: Path) -> None:
    """Nothing staged and, once its message is acknowledged, nothing delivered left."""
    for _ in range(100):
        left = [*(staging / "incoming").iterdir(), *(staging / "delivered").iterdir()]
        if not left:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"left in staging: {left}")
