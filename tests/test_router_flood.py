"""One agency flooding the router, on the real broker: its hostile headers are refused with
their reason and it is told, its excess over the rate limit is refused unread, and another
agency's genuine envelopes are routed promptly all the while."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import aio_pika
import pytest
from prometheus_client import REGISTRY

from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router.ratelimit import AccountRateLimits, RateLimit
from backbone.router.topology import apply_topology
from backbone.store import open_store
from backbone.wire.events import EventType, decode_events
from backbone.wire.names import H_BODY_SHA256, H_REASON
from tests.hostile.build import PADDED_HEADER_BYTES, key_bomb, padded_header
from tests.support import Exchange, make_router, open_deployment

pytestmark = pytest.mark.broker

A, B, TO = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41"  # A floods, B is honest
BOMBS = 40  # the figure: after 40 of them, B's envelope was routed 15 s late
B_ENVELOPES = 5
B_LATENCY_BOUND = 5.0  # seconds; before the bounds, 40 bombs held B up 15 s (here 26.6 s)


async def _routed_since(
    exchange: Exchange, party: str, bodies: list[bytes], started: float
) -> list[float]:
    """Seconds from ``started`` until ``party``'s events queue said each of ``bodies`` was
    routed, in the order of ``bodies``."""
    waiting = {read_frame(body).header.envelope_id: body for body in bodies}
    seen: dict[bytes, float] = {}
    channel = await exchange.channel(exchange.account_of(party))
    queue = await channel.get_queue(exchange.events_of(party), ensure=False)
    while waiting and time.perf_counter() - started < 180:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.01)
            continue
        await message.ack()
        for event in decode_events(message.body):
            if event.type == EventType.ROUTED and event.envelope_id in waiting:
                seen[waiting.pop(event.envelope_id)] = time.perf_counter() - started
    assert not waiting, f"{len(waiting)} of {party}'s envelopes were not routed in 180 s"
    return [seen[body] for body in bodies]


async def test_header_bombs_from_one_agency_are_refused_and_another_is_routed_promptly(
    amqp_url: str, tmp_path: Path
) -> None:
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    router = make_router(exchange, await open_store(f"sqlite+aiosqlite:///{tmp_path / 'db'}"))
    try:
        # The topology first (as `backbone topology apply` does), so that A's flood waits in
        # the inbound queue when the router starts and B's envelopes arrive behind it.
        async with await aio_pika.connect(amqp_url) as admin:
            await apply_topology(await admin.channel(), exchange.directory, exchange.names)
        hostile = [key_bomb(exchange.seal_document(A, [TO], n)) for n in range(BOMBS)] + [
            padded_header(
                exchange.seal_document(A, [TO], 100 + n),
                exchange.pki.agency(A),
                PADDED_HEADER_BYTES,
            )
            for n in range(BOMBS)
        ]
        genuine = [exchange.seal_document(B, [TO], 200 + n) for n in range(B_ENVELOPES)]
        for body in hostile:
            await exchange.submit(body, as_account=exchange.account_of(A))
        for body in genuine:  # B sends while A's flood waits for the router
            await exchange.submit(body, as_account=exchange.account_of(B))
        # The router runs in this process: time from before its start, since a blocked event
        # loop would hold up its start (and anything measured after it) as well.
        started = time.perf_counter()
        await router.start()
        latencies = await _routed_since(exchange, B, genuine, started)
        print(
            f"\nB's envelopes, queued behind {len(hostile)} hostile ones from A, routed "
            "this long after the router started: "
            + ", ".join(f"{seconds:.3f} s" for seconds in latencies)
        )
        assert max(latencies) < B_LATENCY_BOUND, latencies

        told = await exchange.events(A, expect=len(hostile), timeout=60)
        assert [(e.type, e.reason) for e in told] == [
            (EventType.REJECTED, Reason.ENVELOPE_MALFORMED)
        ] * len(hostile)
        messages = [event.message or "" for event in told]
        assert sum("':' bytes" in message for message in messages) == BOMBS
        assert sum("a header for 1 recipient(s) is at most" in m for m in messages) == BOMBS
        kept = await exchange.drain(exchange.names.quarantine_queue, expect=len(hostile))
        # Nothing lost: each refused body is accounted for by its digest (the quarantine keeps a
        # record, not the bulk, of an oversized or unreadable body).
        assert sorted(str((m.headers or {}).get(H_BODY_SHA256)) for m in kept) == sorted(
            hashlib.sha256(body).hexdigest() for body in hostile
        )
        assert {(m.headers or {}).get(H_REASON) for m in kept} == {"envelope_malformed"}
        delivered = await exchange.drain(exchange.inbox_of(TO), expect=B_ENVELOPES)
        assert sorted(m.body for m in delivered) == sorted(genuine)
    finally:
        await router.stop()
        await exchange.close()


async def test_an_account_over_its_rate_is_refused_and_told_while_another_is_routed(
    amqp_url: str, tmp_path: Path
) -> None:
    now = [0.0]  # the limiter's clock: moves only when the test says
    limits = AccountRateLimits(RateLimit(per_second=1, burst=5), clock=lambda: now[0])
    counted = (
        REGISTRY.get_sample_value("vdx_rate_limited_total", {"tier": "central-provincial"}) or 0.0
    )
    async with open_deployment(amqp_url, tmp_path, router_rate_limits=limits) as deployment:
        exchange = deployment.exchange
        flood = [exchange.seal_document(A, [TO], number) for number in range(12)]
        honest = [exchange.seal_document(B, [TO], 100 + number) for number in range(3)]
        for body in flood:
            await exchange.submit(body, as_account=exchange.account_of(A))
        for body in honest:
            await exchange.submit(body, as_account=exchange.account_of(B))

        b_told = await exchange.events(B, expect=3)
        assert [e.type for e in b_told] == [EventType.ROUTED] * 3
        a_told = await exchange.events(A, expect=12)
        routed = [e for e in a_told if e.type == EventType.ROUTED]
        refused = [e for e in a_told if e.type == EventType.REJECTED]
        assert len(routed) == 5  # the burst, then nothing refills
        assert len(refused) == 7
        assert {e.reason for e in refused} == {Reason.RATE_LIMITED}
        assert all("send it again later" in (e.message or "") for e in refused)
        kept = await exchange.drain(exchange.names.quarantine_queue, expect=7)
        assert {(m.headers or {}).get(H_REASON) for m in kept} == {"rate_limited"}
        # Refused unread: the quarantine keeps a record with the body's digest, not the body.
        by_digest = {hashlib.sha256(body).hexdigest(): body for body in flood}
        refused_bodies = [by_digest[str((m.headers or {}).get(H_BODY_SHA256))] for m in kept]
        after = REGISTRY.get_sample_value("vdx_rate_limited_total", {"tier": "central-provincial"})
        assert after == counted + 7

        # Nothing was lost or claimed: the sender resends once its tokens are back.
        now[0] += 2.0
        for body in refused_bodies[:2]:  # the sender's own copies (its sent/ files)
            await exchange.submit(body, as_account=exchange.account_of(A))
        resent = await exchange.events(A, expect=2)
        assert [e.type for e in resent] == [EventType.ROUTED] * 2
        delivered = await exchange.drain(exchange.inbox_of(TO), expect=5 + 3 + 2)
        assert len(delivered) == 10
