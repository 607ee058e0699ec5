"""A recipient keeps its intake latency for genuine documents while attack envelopes arrive
(issue 14, finding 1): the real broker, router and :class:`AdapterClient`, one run, measured.

Each attack is a genuine document the dishonest sender XML-signed and then bulked up: before
the pre-scan, one envelope with 80,000 attributes on an element took the recipient 25 s (124 s
on a loaded test machine) to canonicalise before its digest failed, and everything behind it
waited, since items were handed out in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters import AdapterClient, Refused
from backbone.envelope import read_frame
from backbone.errors import Reason
from tests.hostile.build import (
    ALTERED_AFTER_SIGNING,
    HONEST,
    RECIPIENT,
    Kit,
    signed_then_altered,
)
from tests.support import make_pki, open_deployment

pytestmark = pytest.mark.broker

ATTACKS: tuple[tuple[str, Reason], ...] = (
    ("build:many_attributes", Reason.EDXML_TOO_COMPLEX),
    ("build:empty_element_flood", Reason.EDXML_TOO_COMPLEX),
    ("build:namespace_flood", Reason.EDXML_TOO_COMPLEX),
)
ROUNDS = 3  # each round: every attack, then one genuine document
LATENCY_BOUND = 5.0  # seconds from submission to hand-out, for every genuine document


async def test_genuine_documents_sent_behind_attack_envelopes_arrive_within_seconds(
    amqp_url: str, tmp_path: Path
) -> None:
    refused: dict[str, float] = {}
    reasons: dict[str, Reason] = {}

    async def keeper(refusal: Refused) -> None:
        refused[refusal.header.envelope_id] = time.monotonic()
        reasons[refusal.header.envelope_id] = refusal.reason

    async with open_deployment(amqp_url, tmp_path) as deployment:
        exchange = deployment.exchange
        kit = Kit(exchange, make_pki(tmp_path / "foreign"), exchange.pki.validator(), 1 << 24)
        client = AdapterClient(deployment.config(RECIPIENT), keep_refused=keeper)
        await client.start()
        arrived: dict[str, float] = {}
        consumer = asyncio.create_task(_consume(client, arrived))
        try:
            genuine: dict[str, float] = {}  # envelope id -> submitted at
            attacks: dict[str, Reason] = {}
            for _ in range(ROUNDS):
                for source, reason in ATTACKS:
                    body = signed_then_altered(kit, ALTERED_AFTER_SIGNING[source])
                    attacks[_envelope_id(body)] = reason
                    await exchange.submit(body, as_account=exchange.account_of(HONEST))
                body = kit.genuine()
                await exchange.submit(body, as_account=exchange.account_of(HONEST))
                genuine[_envelope_id(body)] = time.monotonic()
            started = min(genuine.values())

            await _until(
                lambda: genuine.keys() <= arrived.keys(),
                LATENCY_BOUND * ROUNDS,
                lambda: (
                    f"{len(genuine.keys() & arrived.keys())} of {len(genuine)} genuine "
                    "documents handed out"
                ),
            )
            latencies = {envelope: arrived[envelope] - sent for envelope, sent in genuine.items()}
            await _until(
                lambda: attacks.keys() <= refused.keys(),
                60.0,
                lambda: f"{len(refused)} of {len(attacks)} attack envelopes refused",
            )
            print(
                f"\nintake latency of {len(genuine)} genuine documents behind "
                f"{len(attacks)} attack envelopes: "
                + ", ".join(f"{latency:.3f}" for latency in latencies.values())
                + f" s (max {max(latencies.values()):.3f} s); attacks refused within "
                f"{max(refused.values()) - started:.3f} s of the first genuine submission"
            )
            assert max(latencies.values()) < LATENCY_BOUND, latencies
            assert reasons == attacks
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await client.close()


async def _consume(client: AdapterClient, arrived: dict[str, float]) -> None:
    async for item in client.received():
        arrived[item.envelope_id] = time.monotonic()


def _envelope_id(body: bytes) -> str:
    return read_frame(body).header.envelope_id


async def _until(condition: Callable[[], bool], timeout: float, state: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {state()}")
        await asyncio.sleep(0.02)
