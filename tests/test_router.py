"""The router on the real broker: routing, fan-out, hubs, rejections, duplicates, statuses,
business flows, with both store back-ends."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path

import aiormq
import pytest

from backbone.edxml import StatusCode
from backbone.envelope import read_frame
from backbone.errors import Reason
from backbone.router.pipeline import Pipeline
from backbone.router.policy import RoutingPolicy
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.wire.events import EventType
from backbone.wire.names import H_BODY_KEPT, H_BODY_SHA256, H_REASON
from backbone.wire.quarantine import QuarantineRecord
from tests.support import HUB, Exchange

pytestmark = pytest.mark.broker

G22, G01, H41 = "000.00.00.G22", "000.00.05.G01", "000.00.00.H41"
H41_COMMUNE, H41_UNIT = "000.07.12.H41", "002.07.12.H41"
H53, H53_DISTRICT, H53_COMMUNE, H53_UNIT = (
    "000.00.00.H53",
    "000.00.32.H53",
    "000.21.32.H53",
    "001.21.32.H53",
)
POSTGRES_URL = os.environ.get(
    "VDX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _store_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'router.db'}"
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
async def deployment(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Exchange, Router]]:
    """A test exchange and a router in this process, on either store back-end."""
    exchange = await Exchange.create(amqp_url, tmp_path / "pki")
    schema = f"t{uuid.uuid4().hex[:10]}" if request.param == "postgresql" else None
    store = await open_store(_store_url(request.param, tmp_path), schema=schema)
    pipeline = Pipeline(
        directory=exchange.directory,
        validator=exchange.pki.validator(),
        store=store,
        names=exchange.names,
        policy=RoutingPolicy(),
        max_envelope_bytes=1024 * 1024,
    )
    router = Router(
        RouterOptions(amqp_url=amqp_url, names=exchange.names, delivery_limit=3),
        directory=exchange.directory,
        pipeline=pipeline,
        store=store,
    )
    await router.start()
    try:
        yield exchange, router
    finally:
        await router.stop()
        if schema is not None:
            await _drop_schema(schema)
        await exchange.close()


@pytest.fixture
def exchange(deployment: tuple[Exchange, Router]) -> Exchange:
    return deployment[0]


@pytest.fixture
def router(deployment: tuple[Exchange, Router]) -> Router:
    return deployment[1]


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def _envelope_ids(messages: list) -> list[str]:  # type: ignore[type-arg]
    return [read_frame(m.body).header.envelope_id for m in messages]


async def test_a_document_from_a_to_b_reaches_b_and_a_hears_it_was_routed(
    exchange: Exchange,
) -> None:
    body = exchange.seal_document(G22, [H41], 1)
    await exchange.submit(body, as_account=exchange.account_of(G22))

    delivered = await exchange.drain(exchange.inbox_of(H41), expect=1)
    assert [m.body for m in delivered] == [body]
    events = await exchange.events(G22, expect=1)
    assert [(e.type, e.envelope_id) for e in events] == [
        (EventType.ROUTED, read_frame(body).header.envelope_id)
    ]


async def test_the_router_consumes_its_inbound_queue_again_after_the_broker_cancels_it(
    exchange: Exchange, router: Router
) -> None:
    # The router consumes envelopes through aiormq itself (``direct_consume``). The broker
    # cancels a consumer with a basic.cancel frame (a deleted queue; this RabbitMQ sends none
    # for a deleted quorum queue, so the test plays that frame): the consumer gone at the
    # broker, the router checks that the queue is there and consumes again.
    first = exchange.seal_document(G22, [H41], 1)
    await exchange.submit(first, as_account=exchange.account_of(G22))
    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [first]
    consumer = router._envelopes
    assert consumer is not None
    underlay = await consumer._underlay()
    await underlay.basic_cancel(consumer._tag)  # gone at the broker, as after its cancel

    consumer._on_cancel(aiormq.spec.Basic.Cancel(consumer_tag=consumer._tag))
    second = exchange.seal_document(G22, [H41], 2)
    await exchange.submit(second, as_account=exchange.account_of(G22))

    delivered = await exchange.drain(exchange.inbox_of(H41), expect=1, timeout=30)
    assert [m.body for m in delivered] == [second]


async def test_one_submission_reaches_recipients_on_all_four_tiers(exchange: Exchange) -> None:
    recipients = [H41, H53_DISTRICT, H41_COMMUNE, H41_UNIT]  # tiers 1, 2, 3, 4
    body = exchange.seal_document(G22, recipients, 2)
    await exchange.submit(body, as_account=exchange.account_of(G22))

    envelope_id = read_frame(body).header.envelope_id
    for code in recipients:
        assert _envelope_ids(await exchange.drain(exchange.inbox_of(code), expect=1)) == [
            envelope_id
        ], code


async def test_a_hub_receives_its_whole_subtree_once_per_envelope(exchange: Exchange) -> None:
    body = exchange.seal_document(G01, [H53, H53_COMMUNE, H53_UNIT, H41], 3)
    await exchange.submit(body, as_account=exchange.account_of(G01))

    hub_inbox = await exchange.drain(exchange.names.inbox_queue(HUB), expect=1)
    assert _envelope_ids(hub_inbox) == [read_frame(body).header.envelope_id]
    assert len(await exchange.drain(exchange.inbox_of(H41), expect=1)) == 1


async def test_an_agency_behind_a_hub_sends_through_the_hubs_account(exchange: Exchange) -> None:
    body = exchange.seal_document(H53_COMMUNE, [G22], 4)
    await exchange.submit(body, as_account=exchange.account_of(H53_COMMUNE))
    assert len(await exchange.drain(exchange.inbox_of(G22), expect=1)) == 1
    events = await exchange.events(H53_COMMUNE, expect=1)  # the hub's events queue
    assert events[0].type is EventType.ROUTED
    assert events[0].party == H53_COMMUNE


async def test_a_byte_identical_resend_is_answered_with_the_original_outcome(
    exchange: Exchange,
) -> None:
    body = exchange.seal_document(G22, [H41], 5)
    account = exchange.account_of(G22)
    await exchange.submit(body, as_account=account)
    await exchange.drain(exchange.inbox_of(H41), expect=1)
    await exchange.submit(body, as_account=account)

    events = await exchange.events(G22, expect=2)
    assert [e.type for e in events] == [EventType.ROUTED, EventType.DUPLICATE]
    assert events[1].original_outcome == "routed"
    assert await exchange.drain(exchange.inbox_of(H41), expect=0, timeout=0.5) == []


async def test_a_status_goes_back_to_the_original_sender_as_a_status_event(
    exchange: Exchange,
) -> None:
    await exchange.submit(
        exchange.seal_document(G22, [H41], 6), as_account=exchange.account_of(G22)
    )
    await exchange.drain(exchange.inbox_of(H41), expect=1)
    for code in (StatusCode.ARRIVED, StatusCode.ACCEPTED, StatusCode.COMPLETED):
        status = exchange.seal_status(H41, G22, 6, code)
        await exchange.submit(status, as_account=exchange.account_of(H41))

    # Envelopes are processed concurrently; recipients order statuses by their edXML Timestamp.
    relayed = await exchange.drain(exchange.inbox_of(G22), expect=3)
    assert sorted(read_frame(m.body).header.status_code for m in relayed) == ["01", "03", "06"]
    statuses = [e for e in await exchange.events(G22, expect=4) if e.type is EventType.STATUS]
    assert sorted(e.status_code for e in statuses) == ["01", "03", "06"]
    assert {e.sender for e in statuses} == {H41}


async def test_a_take_back_to_many_recipients_tells_each_of_them_alone(
    exchange: Exchange,
) -> None:
    """Issue 14, finding 9: a take-back to 1,000 recipients emitted 1,000 status events each
    listing all 1,000. Now each recipient's event lists that recipient only (here all eight
    other agencies of the test directory; 1,000 in test_event_publisher.py)."""
    everyone = [H41, G01, H41_COMMUNE, H41_UNIT, H53, H53_DISTRICT, H53_COMMUNE, H53_UNIT]
    account = exchange.account_of(G22)
    await exchange.submit(exchange.seal_document(G22, everyone, 8), as_account=account)
    await exchange.events(G22, expect=1)  # routed
    take_back = exchange.seal_status(G22, G22, 8, StatusCode.TAKE_BACK_REQUESTED, to=everyone)
    await exchange.submit(take_back, as_account=account)

    direct = [H41, G01, H41_COMMUNE, H41_UNIT]
    told = {code: await exchange.events(code, expect=1) for code in direct}
    told[HUB] = await exchange.events(H53, expect=4)  # the hub's queue, for its four
    events = [event for found in told.values() for event in found]
    assert all(event.type is EventType.STATUS for event in events)
    assert all(event.status_code == "13" for event in events)
    assert sorted(event.party for event in events) == sorted(everyone)
    assert all(event.recipients == (event.party,) for event in events)
    for code in direct:
        assert [event.party for event in told[code]] == [code]


async def test_a_revocation_reaches_the_original_recipients(exchange: Exchange) -> None:
    account = exchange.account_of(G22)
    await exchange.submit(exchange.seal_document(G22, [H41, H41_COMMUNE], 7), as_account=account)
    await exchange.events(G22, expect=1)  # routed: a revocation follows what was delivered
    revocation = exchange.seal_document(G22, [H41, H41_COMMUNE], 7, business=1)
    await exchange.submit(revocation, as_account=account)

    for code in (H41, H41_COMMUNE):
        received = await exchange.drain(exchange.inbox_of(code), expect=2)
        assert [read_frame(m.body).header.business_type for m in received] == [0, 1]


async def _assert_rejected(
    exchange: Exchange,
    body: bytes,
    *,
    as_account: str,
    reason: Reason,
    party: str | None,
    user_id: str | None = "",
    kept: bool = True,
) -> None:
    """``kept``: the quarantine holds the body itself (small, header readable), else a
    record of it (its SHA-256 and size, not the body)."""
    await exchange.submit(body, as_account=as_account, user_id=user_id)
    quarantined = await exchange.drain(exchange.names.quarantine_queue, expect=1)
    assert [m.headers[H_BODY_SHA256] for m in quarantined] == [sha256(body).hexdigest()]
    assert quarantined[0].headers[H_BODY_KEPT] is kept
    if kept:
        assert [m.body for m in quarantined] == [body]
    else:
        record = QuarantineRecord.model_validate_json(quarantined[0].body)
        assert (record.reason, record.body_bytes) == (reason, len(body))
    assert quarantined[0].headers[H_REASON] == reason.value
    if party is not None:
        events = await exchange.events(party, expect=1)
        assert [(e.type, e.reason) for e in events] == [(EventType.REJECTED, reason)]
        assert events[0].message


async def test_rejections_are_quarantined_and_the_sender_told_why(exchange: Exchange) -> None:
    g22 = exchange.account_of(G22)
    h41 = exchange.account_of(H41)

    await _assert_rejected(
        exchange,
        b"not an envelope",
        as_account=g22,
        reason=Reason.ENVELOPE_MALFORMED,
        party=G22,
        kept=False,  # unreadable: a record of it
    )
    await _assert_rejected(
        exchange,
        exchange.seal_document(G22, [H41], 10),
        as_account=h41,  # H41's account publishing G22's envelope: H41 is told, not G22
        reason=Reason.PUBLISHER_MISMATCH,
        party=H41,
    )
    await _assert_rejected(
        exchange,
        exchange.seal_document("000.00.00.G09", [H41], 11),  # certified, but not in the directory
        as_account=g22,
        reason=Reason.SENDER_UNKNOWN,
        party=G22,  # the publisher
    )
    await _assert_rejected(
        exchange,
        exchange.seal_document(G22, [H41, "000.00.00.H99"], 12),
        as_account=g22,
        reason=Reason.RECIPIENT_UNKNOWN,
        party=G22,
    )
    tampered = bytearray(exchange.seal_document(G22, [H41], 13))
    tampered[-1] ^= 0x01
    await _assert_rejected(
        exchange, bytes(tampered), as_account=g22, reason=Reason.PAYLOAD_TAMPERED, party=G22
    )
    await _assert_rejected(
        exchange,
        exchange.seal_status(H41, G22, 14, StatusCode.ACCEPTED),  # no document 14 was sent
        as_account=h41,
        reason=Reason.STATUS_UNKNOWN_DOCUMENT,
        party=H41,
    )
    await _assert_rejected(
        exchange,
        exchange.seal_document(G22, [H41], 15, business=1),  # revokes a document never sent
        as_account=g22,
        reason=Reason.REFERENCED_DOCUMENT_UNKNOWN,
        party=G22,
    )


async def test_a_different_payload_under_a_routed_identity_is_refused(exchange: Exchange) -> None:
    g22 = exchange.account_of(G22)
    await exchange.submit(exchange.seal_document(G22, [H41], 20), as_account=g22)
    await exchange.drain(exchange.inbox_of(H41), expect=1)
    await exchange.events(G22, expect=1)
    await _assert_rejected(
        exchange,
        exchange.seal_document(G22, [H41], 20),  # same document, sealed anew: new ciphertext
        as_account=g22,
        reason=Reason.DUPLICATE_CONFLICT,
        party=G22,
    )


async def test_a_known_recipient_with_nothing_bound_is_parked_and_the_sender_told(
    exchange: Exchange,
) -> None:
    tier_1 = exchange.names.tier_exchange(exchange.directory.tiers.tier(1))
    channel = await exchange.channel(exchange.account_of(G22))
    inbox = await channel.get_queue(exchange.inbox_of(H41), ensure=False)
    await inbox.unbind(tier_1, routing_key="H41.00.00.000")

    body = exchange.seal_document(G22, [H41], 30)
    await exchange.submit(body, as_account=exchange.account_of(G22))

    parked = await exchange.drain(exchange.names.unroutable_parked, expect=1)
    assert [m.body for m in parked] == [body]
    events = await exchange.events(G22, expect=2)
    assert {e.type for e in events} == {EventType.ROUTED, EventType.UNROUTABLE}
    unroutable = next(e for e in events if e.type is EventType.UNROUTABLE)
    assert unroutable.reason is Reason.UNROUTABLE


async def test_an_envelope_that_keeps_failing_is_dead_lettered_and_the_router_goes_on(
    exchange: Exchange, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = exchange.seal_document(G22, [H41], 31)
    evaluate = router.pipeline.evaluate

    async def crash_on_poison(body: bytes, *, user_id: str | None, redelivered: bool) -> object:
        if body == poison:
            raise RuntimeError("simulated router bug")
        return await evaluate(body, user_id=user_id, redelivered=redelivered)

    monkeypatch.setattr(router.pipeline, "evaluate", crash_on_poison)
    account = exchange.account_of(G22)
    await exchange.submit(poison, as_account=account)
    healthy = exchange.seal_document(G22, [H41], 32)
    await exchange.submit(healthy, as_account=account)

    assert [m.body for m in await exchange.drain(exchange.inbox_of(H41), expect=1)] == [healthy]
    dead = await exchange.drain(exchange.names.dead_letter_parked, expect=1)
    assert [m.body for m in dead] == [poison]
    events = await exchange.events(G22, expect=2)
    assert {(e.type, e.document_id.endswith("31/VP")) for e in events} >= {
        (EventType.DEAD_LETTERED, True)
    }


async def test_an_envelope_an_inbox_dead_letters_keeps_its_routed_outcome_and_tells_the_sender(
    exchange: Exchange, router: Router
) -> None:
    body = exchange.seal_document(G22, [H41], 33)
    envelope_id = read_frame(body).header.envelope_id
    await exchange.submit(body, as_account=exchange.account_of(G22))
    assert [e.type for e in await exchange.events(G22, expect=1)] == [EventType.ROUTED]

    # The recipient's adapter keeps failing on it until the inbox's delivery limit.
    channel = await exchange.channel(exchange.account_of(H41))
    inbox = await channel.get_queue(exchange.inbox_of(H41), ensure=False)
    for _ in range(20):
        message = await inbox.get(fail=False)
        if message is None:
            break
        await message.reject(requeue=True)

    assert [m.body for m in await exchange.drain(exchange.names.dead_letter_parked, expect=1)] == [
        body
    ]
    (event,) = await exchange.events(G22, expect=1)
    assert event.type is EventType.DEAD_LETTERED
    assert event.envelope_id == envelope_id
    assert event.message is not None
    assert exchange.inbox_of(H41) in event.message
    # A resend is still answered as routed: the inbox's failure did not undo the routing.
    await exchange.submit(body, as_account=exchange.account_of(G22))
    (duplicate,) = await exchange.events(G22, expect=1)
    assert (duplicate.type, duplicate.original_outcome) == (EventType.DUPLICATE, "routed")
