"""Chunked documents through several router replicas and a restarted router (issue 18):
the open documents are kept in the store, so whichever replica takes a chunk checks and
forwards it, and a header sent again resets nothing. Real broker, real routers, PostgreSQL
shared by the replicas as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters import AdapterClient
from backbone.edxml import EdxmlDocument
from backbone.envelope.split import SealedDocument
from backbone.router.service import Router
from backbone.store.abc import OpenChunked
from backbone.wire import EventType
from testkit import Exchange
from testkit.deployment import Deployment, Inbox, make_router
from testkit.store import backend
from tests.faults.harness import RouterProcess, deployment_for, exchange_on
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


@dataclass
class Replicas:
    deployment: Deployment
    routers: list[Router]
    a: AdapterClient  # G22's client: its events
    b_inbox: Inbox  # what H41's client hands out


@pytest.fixture
async def replicas(amqp_url: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Two routers on one inbound queue and one PostgreSQL schema; G22 and H41 in 1 MiB
    chunks."""
    exchange = await Exchange.create(amqp_url, tmp_path / "pki", certificates=True)
    routers: list[Router] = []
    try:
        async with backend("postgresql", tmp_path) as database:
            for _ in range(2):
                router = make_router(exchange, await database.open(), delivery_limit=3)
                await router.start()
                routers.append(router)
            deployment = Deployment(
                exchange, routers[0], tmp_path, exchange.directory_file(tmp_path)
            )
            try:
                a, b = await _pair(deployment)
                yield Replicas(deployment, routers, a, deployment.inbox(b))
            finally:
                await deployment.close()
                for router in routers:
                    await router.stop()
    finally:
        await exchange.close()


async def _pair(deployment: Deployment) -> tuple[AdapterClient, AdapterClient]:
    return (
        await deployment.adapter(G22, settings=CHUNKS),
        await deployment.adapter(H41, settings=CHUNKS),
    )


async def _kept(router: Router, document: SealedDocument, passed: int) -> OpenChunked:
    """The document as the store keeps it once ``passed`` of its chunks have passed."""
    for _ in range(400):
        kept = await router.store.chunked(document.header.envelope_id)
        if kept is not None and len(kept.passed) >= passed:
            return kept
        await asyncio.sleep(0.05)
    raise AssertionError(f"{document.header.envelope_id}: {passed} chunk(s) never passed")


async def test_a_12_mib_document_in_1_mib_chunks_arrives_intact_through_two_replicas(
    replicas: Replicas,
) -> None:
    edxml, annex = large_document(1, 9 * MiB)  # base64: about 12 MiB of edXML
    assert len(edxml) >= 12 * MiB

    with capture_logs() as logs:
        receipt = await replicas.a.send(edxml)
        [item] = await replicas.b_inbox.wait_for(1, timeout=120)
        assert await replicas.b_inbox.quiet() == [item]

    assert item.envelope_id == receipt.envelope_id
    assert isinstance(item.message, EdxmlDocument)
    assert item.message.attachments[0].content == annex
    forwarded = [e for e in logs if e["event"] == "router.chunk_forwarded"]
    chunk_count = item.header.chunk_count  # type: ignore[attr-defined]
    assert chunk_count >= 12
    assert sorted(e["chunk"] for e in forwarded) == list(range(chunk_count))
    # Both replicas took chunks, each checked against the header only one of them routed.
    assert {e["replica"] for e in forwarded} == {r._replica for r in replicas.routers}


async def test_a_header_sent_again_mid_document_resets_nothing_and_it_completes_once(
    replicas: Replicas,
) -> None:
    first, second = replicas.routers
    document = sealed_document(replicas.deployment, 2)
    async with RawPublisher(replicas.deployment) as publisher:
        await publisher.header(document)
        await publisher.chunks(document, range(1))
        before = await _kept(first, document, passed=1)

        await publisher.header(document)  # the same signed header again
        duplicate = await next_event(replicas.a, EventType.DUPLICATE)
        assert duplicate.envelope_id == document.header.envelope_id
        assert await second.store.chunked(document.header.envelope_id) == before

        await publisher.chunks(document, range(1, document.header.chunk_count))
    [item] = await replicas.b_inbox.wait_for(1, timeout=60)
    assert await replicas.b_inbox.quiet() == [item]

    assert item.envelope_id == document.header.envelope_id
    assert before.passed == frozenset({0})


async def test_a_half_sent_document_sent_again_whole_completes_exactly_once(
    replicas: Replicas,
) -> None:
    first, second = replicas.routers
    document = sealed_document(replicas.deployment, 3)
    count = document.header.chunk_count
    with capture_logs() as logs:
        async with RawPublisher(replicas.deployment) as publisher:
            await publisher.header(document)
            await publisher.chunks(document, range(2))  # then the sender crashes
            await _kept(second, document, passed=2)
        async with RawPublisher(replicas.deployment) as publisher:  # restarted: all again
            await publisher.header(document)
            await publisher.chunks(document)
        [item] = await replicas.b_inbox.wait_for(1, timeout=60)
        assert await replicas.b_inbox.quiet() == [item]
        kept = await _kept(first, document, passed=count)

    assert item.envelope_id == document.header.envelope_id
    assert kept.passed == frozenset(range(count))
    dropped = [e["chunk"] for e in logs if e["event"] == "router.chunk_duplicate_dropped"]
    assert sorted(dropped) == [0, 1]  # what had passed, known as such by either replica


async def test_a_router_killed_between_header_and_chunks_completes_the_document_restarted(
    amqp_url: str, tmp_path: Path
) -> None:
    async with exchange_on(amqp_url, tmp_path) as exchange:
        router = RouterProcess(exchange, tmp_path)
        deployment = deployment_for(exchange, tmp_path)
        router.start()
        try:
            await router.started()
            a, b = await _pair(deployment)
            b_inbox = deployment.inbox(b)
            document = sealed_document(deployment, 4)
            async with RawPublisher(deployment) as publisher:
                await publisher.header(document)
                await publisher.chunks(document, range(1))
                routed = await next_event(a, EventType.ROUTED)
                assert routed.envelope_id == document.header.envelope_id
                await asyncio.sleep(0.5)  # chunk 0 forwarded and recorded

                router.kill()  # SIGKILL: nothing of its memory survives
                await publisher.chunks(document, range(1, 2))  # waits in the queue
                router.start()
                await router.started()
                await publisher.chunks(document, range(2, document.header.chunk_count))
            [item] = await b_inbox.wait_for(1, timeout=60)
            assert await b_inbox.quiet() == [item]
        finally:
            await deployment.close()
            router.stop()

    assert item.envelope_id == document.header.envelope_id
    assert isinstance(item.message, EdxmlDocument)
