"""The router as a real process, killed with SIGKILL mid-stream and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aio_pika.abc import AbstractIncomingMessage

from backbone.broker.management import ManagementClient
from backbone.directory import dump_directory
from backbone.envelope import read_header
from backbone.router.service import H_REPUBLISHED
from backbone.router.store import open_store
from tests.router_harness import Exchange

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"
DOCUMENTS = 1500
RATE = 300  # documents per second offered


@pytest.fixture
async def exchange(amqp_url: str, tmp_path: Path) -> AsyncIterator[Exchange]:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    yield exchange
    await exchange.close()


def _config(exchange: Exchange, tmp_path: Path) -> Path:
    directory = tmp_path / "directory.yaml"
    dump_directory(exchange.directory.file, directory)
    config = tmp_path / "router.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "directory": str(directory),
                "prefix": exchange.names.prefix,
                "store_url": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
                "trust_anchors": [str(exchange.pki.ca.cert_path)],
                "crls": [str(exchange.pki.ca.crl_path)],
            }
        )
    )
    return config


def _start_router(config: Path, amqp_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AMQP_URL": amqp_url, "VDX_LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "backbone", "router", "run", "--config", str(config)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


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
    exchange: Exchange, amqp_url: str, tmp_path: Path
) -> None:
    config = _config(exchange, tmp_path)
    log = tmp_path / "router.log"
    management = ManagementClient.from_env()
    bodies = [exchange.seal_document(G22, [H41], n) for n in range(DOCUMENTS)]
    headers = {h.envelope_id: h for h in (read_header(body).header for body in bodies)}
    account = exchange.account_of(G22)
    delivered: list[AbstractIncomingMessage] = []

    async def stream() -> None:
        for body in bodies:  # a steady stream, so the kill lands mid-way
            await exchange.submit(body, as_account=account)
            await asyncio.sleep(1 / RATE)

    router = _start_router(config, amqp_url, log)
    collector: asyncio.Task[None] | None = None
    try:
        await _wait_for(
            lambda: _has_consumer(management, exchange.names.inbound_queue), 60, "the router"
        )
        collector = asyncio.create_task(_collect(exchange, exchange.inbox_of(H41), delivered))
        publisher = asyncio.create_task(stream())
        await _wait_for(lambda: _at_least(delivered, DOCUMENTS // 5), 60, "a fifth routed")
        router.send_signal(signal.SIGKILL)
        router.wait(timeout=10)
        routed_before_kill = len(delivered)
        await asyncio.sleep(1)
        router = _start_router(config, amqp_url, log)
        await publisher
        await _wait_for(
            lambda: _at_least_distinct(delivered, DOCUMENTS), 120, "every envelope routed"
        )
        await asyncio.sleep(1)  # anything routed twice would arrive by now
    finally:
        if collector is not None:
            collector.cancel()
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=30)

    assert routed_before_kill < DOCUMENTS, "the kill came too late to prove anything"
    counts = Counter(read_header(m.body).header.envelope_id for m in delivered)
    assert set(counts) == set(headers), f"lost: {len(set(headers) - set(counts))}"
    # A kill between the broker's confirm and the store's record leaves the claim open: the
    # envelope is published again, marked, and the recipient drops it by envelope id.
    again = {envelope_id for envelope_id, n in counts.items() if n > 1}
    marked = {
        read_header(m.body).header.envelope_id for m in delivered if m.headers.get(H_REPUBLISHED)
    }
    assert again <= marked, "an envelope was routed twice without being marked a republish"
    assert router.returncode == 0, log.read_text()[-2000:]

    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'router.db'}")
    try:
        for header in headers.values():
            history = await store.history(header.document_id, sender=G22, recipient=H41)
            assert len(history) == 1, "the store records each envelope routed exactly once"
    finally:
        await store.close()


async def _has_consumer(management: ManagementClient, queue: str) -> bool:
    return await management.queue_consumers(queue) > 0


async def _at_least(messages: list[AbstractIncomingMessage], count: int) -> bool:
    return len(messages) >= count


async def _at_least_distinct(messages: list[AbstractIncomingMessage], count: int) -> bool:
    return len({read_header(m.body).header.envelope_id for m in messages}) >= count
