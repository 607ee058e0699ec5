"""The router as a real process: killed with SIGKILL mid-stream and restarted, and riding
out a restart of its broker (a throwaway node, never the shared one)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aio_pika.abc import AbstractIncomingMessage

from backbone.envelope import read_frame
from backbone.store import open_store
from backbone.wire.names import H_REPUBLISHED
from tests.faults.harness import RouterProcess, exchange_on
from tests.support import Exchange
from tests.support.broker_nodes import LocalNode, local_node_fixture  # noqa: F401

# Its throwaway RabbitMQ node boots beside no other (make test's workers: --dist loadgroup).
pytestmark = [pytest.mark.broker, pytest.mark.xdist_group("rabbitmq_nodes")]

G22, H41 = "000.00.00.G22", "000.00.00.H41"
DOCUMENTS = 1500
RATE = 300  # documents per second offered


@pytest.fixture
async def exchange(amqp_url: str, tmp_path: Path) -> AsyncIterator[Exchange]:
    async with exchange_on(amqp_url, tmp_path, certificates=False) as opened:
        yield opened


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _collect(
    exchange: Exchange, queue_name: str, into: list[AbstractIncomingMessage]
) -> None:
    channel = await exchange.channel(exchange.accounts()[0])
    queue = await channel.get_queue(queue_name, ensure=False)
    async with queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            into.append(message)


async def test_router_killed_mid_stream_and_restarted_loses_nothing_and_routes_once(
    exchange: Exchange, tmp_path: Path
) -> None:
    router = RouterProcess(exchange, tmp_path)
    bodies = [exchange.seal_document(G22, [H41], n) for n in range(DOCUMENTS)]
    headers = {h.envelope_id: h for h in (read_frame(body).header for body in bodies)}
    account = exchange.account_of(G22)
    delivered: list[AbstractIncomingMessage] = []

    async def stream() -> None:
        for body in bodies:  # a steady stream, so the kill lands mid-way
            await exchange.submit(body, as_account=account)
            await asyncio.sleep(1 / RATE)

    router.start()
    collector: asyncio.Task[None] | None = None
    try:
        await router.started()
        collector = asyncio.create_task(_collect(exchange, exchange.inbox_of(H41), delivered))
        publisher = asyncio.create_task(stream())
        await _wait_for(lambda: _at_least(delivered, DOCUMENTS // 5), 60, "a fifth routed")
        router.kill()
        routed_before_kill = len(delivered)
        await asyncio.sleep(1)
        router.start()
        await publisher
        await _wait_for(
            lambda: _at_least_distinct(delivered, DOCUMENTS), 120, "every envelope routed"
        )
        await asyncio.sleep(1)  # anything routed twice would arrive by now
    finally:
        if collector is not None:
            collector.cancel()
        code = router.stop()

    assert routed_before_kill < DOCUMENTS, "the kill came too late to prove anything"
    counts = Counter(read_frame(m.body).header.envelope_id for m in delivered)
    assert set(counts) == set(headers), f"lost: {len(set(headers) - set(counts))}"
    # A kill between the broker's confirm and the store's record leaves the claim open: the
    # envelope is published again, marked, and the recipient drops it by envelope id.
    again = {envelope_id for envelope_id, n in counts.items() if n > 1}
    marked = {
        read_frame(m.body).header.envelope_id for m in delivered if m.headers.get(H_REPUBLISHED)
    }
    assert again <= marked, "an envelope was routed twice without being marked a republish"
    assert code == 0, router.tail()

    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    try:
        for header in headers.values():
            history = await store.history(header.document_id, sender=G22, recipient=H41)
            assert len(history) == 1, "the store records each envelope routed exactly once"
    finally:
        await store.close()


async def _at_least(messages: list[AbstractIncomingMessage], count: int) -> bool:
    return len(messages) >= count


async def _at_least_distinct(messages: list[AbstractIncomingMessage], count: int) -> bool:
    return len({read_frame(m.body).header.envelope_id for m in messages}) >= count


async def test_router_rides_out_a_broker_restart_and_loses_nothing(
    local_node: LocalNode, tmp_path: Path
) -> None:
    """On a throwaway node (tests/support/broker_nodes.py): never restart the shared broker."""
    async with exchange_on(local_node.url, tmp_path, certificates=False) as exchange:
        await _route_through_a_broker_restart(exchange, local_node, tmp_path)


async def _route_through_a_broker_restart(
    exchange: Exchange, node: LocalNode, tmp_path: Path
) -> None:
    router = RouterProcess(exchange, tmp_path)
    count = 600
    bodies = [exchange.seal_document(G22, [H41], n) for n in range(count)]
    sent = {read_frame(body).header.envelope_id for body in bodies}
    account = exchange.account_of(G22)

    async def submit_until_confirmed(body: bytes) -> None:
        # What an adapter does: resend the same bytes until the broker confirms them.
        while True:
            try:
                await exchange.submit(body, as_account=account)
                return
            except Exception:
                await asyncio.sleep(0.5)

    async def stream() -> None:
        for body in bodies:
            await submit_until_confirmed(body)
            await asyncio.sleep(1 / RATE)

    router.start()
    try:
        await router.started()
        publisher = asyncio.create_task(stream())
        await asyncio.sleep(0.7)
        await asyncio.to_thread(node.stop_app)
        await asyncio.sleep(2)
        await asyncio.to_thread(node.start_app)
        await asyncio.wait_for(publisher, 120)
        delivered = await exchange.drain(exchange.inbox_of(H41), expect=count, timeout=120)
    finally:
        code = router.stop()

    received = Counter(read_frame(m.body).header.envelope_id for m in delivered)
    assert set(received) == sent, f"lost: {len(sent - set(received))}"
    assert router.count("router.reconnected") > 0, router.tail()
    assert code == 0, router.tail()
