"""What the router said about a hostile message, read on the broker: the event its sender
got (on the operators' events queue, which has every event) and the quarantine's copy or
record of it. Shared by the corpus runners (tests/test_hostile.py,
tests/test_chunked_hostile.py)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import pytest
from aio_pika.abc import AbstractIncomingMessage

from backbone.wire.events import Event, EventType, decode_events
from backbone.wire.names import H_BODY_SHA256
from testkit import Exchange

__all__ = ["WAIT", "event", "quarantined", "take"]

WAIT = 20.0


async def event(exchange: Exchange, party: str, kind: EventType, envelope_id: str | None) -> Event:
    """The first event of ``kind`` about ``envelope_id`` for ``party``, read on the operators'
    events queue (``party``'s own queue may be an adapter's to consume). The events before it
    (earlier cases' routed and status events) are consumed."""
    seen: list[str] = []

    def wanted(candidate: Event) -> bool:
        return (
            candidate.type == kind
            and candidate.envelope_id == envelope_id
            and candidate.party == party
        )

    def about(message: AbstractIncomingMessage) -> bool:
        events = decode_events(message.body)
        seen.extend(f"{e.type}:{e.envelope_id}:{e.reason}" for e in events)
        return any(wanted(e) for e in events)

    queue = exchange.names.events_operators_queue
    message = await take(exchange, queue, about, f"{kind} {envelope_id} for {party}", seen)
    return next(e for e in decode_events(message.body) if wanted(e))


async def quarantined(exchange: Exchange, body: bytes) -> AbstractIncomingMessage:
    """The quarantine's message about ``body``: the body itself or a record of it, both
    carrying its SHA-256."""
    digest = hashlib.sha256(body).hexdigest()

    def about(message: AbstractIncomingMessage) -> bool:
        return (message.headers or {}).get(H_BODY_SHA256) == digest

    return await take(exchange, exchange.names.quarantine_queue, about, "it in quarantine")


async def take(
    exchange: Exchange,
    queue_name: str,
    match: Callable[[AbstractIncomingMessage], bool],
    what: str,
    seen: list[str] | None = None,
    *,
    wait: float = WAIT,
) -> AbstractIncomingMessage:
    """The first message of ``queue_name`` that ``match``es within ``wait`` seconds (those
    before it acked)."""
    channel = await exchange.channel(exchange.accounts()[0])
    queue = await channel.get_queue(queue_name, ensure=False)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        if match(message):
            return message
    pytest.fail(f"no {what} on {queue_name} within {wait} s; saw {seen}")
