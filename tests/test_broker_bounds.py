"""Issue 14, findings 5 and 6, on the real broker with provisioned least-privilege accounts:
a sender cannot park its bulk in quarantine, the quarantine and events queues stay within
their policies' bounds, and one account cannot hold more connections or channels than its
limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from cryptography.hazmat.primitives.serialization import Encoding

from backbone.broker.bounds import AccountLimits, BrokerBounds, QueueBound
from backbone.broker.management import ManagementClient
from backbone.broker.provision import definitions, plan_accounts, plan_policies
from backbone.directory import DirectoryBuilder
from backbone.envelope import Kind, SealParties, read_frame, seal
from backbone.errors import ConfigurationError, Reason
from backbone.router.held_delivery import HeldDelivery, deliver_held
from backbone.router.pipeline import Pipeline, Reject
from backbone.router.quarantine import Quarantine
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.wire.events import Event, EventType, decode_events
from backbone.wire.names import (
    H_BODY_KEPT,
    H_BODY_SHA256,
    H_ENVELOPE,
    H_PUBLISHER,
    H_REASON,
    H_REPUBLISHED,
    Names,
)
from backbone.wire.quarantine import RECORD_TYPE, QuarantineRecord
from testkit.pki import DevPki
from tests.support import document_edxml, document_id, make_pki
from tests.support.provisioning import (
    HUB,
    VIA_HUB,
    A,
    B,
    Provisioned,
    provisioned,
    sealed_document,
)

pytestmark = pytest.mark.broker

KiB, MiB = 1024, 1024 * 1024
ROUTER_LIMIT = 1 * MiB  # the router's envelope limit here, so "oversized" stays cheap
SMALL = BrokerBounds(
    agency=AccountLimits(max_connections=2, max_channels=3),
    quarantine=QueueBound(max_bytes=64 * KiB, max_messages=3, max_age_seconds=3600),
    events=QueueBound(max_bytes=64 * KiB, max_messages=5),
    operators_events=QueueBound(max_bytes=1 * MiB, max_messages=100, max_age_seconds=3600),
    inboxes=QueueBound(max_bytes=1 * MiB, max_messages=2, overflow="reject-publish"),
)


@dataclass
class World:
    amqp_url: str
    deployment: Provisioned
    body: bytes  # a genuine small envelope from A to B
    pki: DevPki

    @property
    def agency(self) -> str:
        return self.deployment.account_of(A)

    async def connect(self, user: str) -> AbstractConnection:
        return await aio_pika.connect(self.deployment.url(self.amqp_url, user))

    async def publish_as_agency(self, *bodies: bytes) -> None:
        async with await self.connect(self.agency) as connection:
            channel = await connection.channel(publisher_confirms=True)
            submit = await channel.get_exchange(self.deployment.names.submit_exchange, ensure=False)
            for body in bodies:
                await submit.publish(
                    aio_pika.Message(body, user_id=self.agency), routing_key="envelope"
                )


@pytest.fixture
async def world(amqp_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with provisioned(amqp_url, tmp_path, SMALL) as deployment:
        pki = make_pki(tmp_path / "pki")
        store = await open_store("memory://")
        names = deployment.names
        router = Router(
            RouterOptions(
                amqp_url=deployment.url(amqp_url, deployment.router_user),
                names=names,
                max_envelope_bytes=ROUTER_LIMIT,
            ),
            directory=deployment.directory,
            pipeline=Pipeline(
                deployment.directory,
                pki.validator(),
                store,
                names,
                max_envelope_bytes=ROUTER_LIMIT,
            ),
            store=store,
        )
        body = sealed_document(pki, 1)
        await router.start()
        try:
            yield World(amqp_url, deployment, body, pki)
        finally:
            await router.stop()


# -- finding 5: the quarantine keeps records, not bulk --------------------------------------


async def test_oversized_and_garbage_bodies_are_quarantined_as_small_records_and_the_sender_told(
    world: World,
) -> None:
    oversized = b"\0" * (2 * MiB)  # over the router's limit
    garbage = b"GET /inbox HTTP/1.1\r\n" + b"x" * (512 * KiB)  # under it, not an envelope
    tampered = bytearray(world.body)
    tampered[-1] ^= 0x01  # small, header readable: kept whole for operators
    await world.publish_as_agency(oversized, garbage, bytes(tampered))

    quarantined = {
        (m.headers or {})[H_BODY_SHA256]: m
        for m in await _take(world, world.deployment.names.quarantine_queue, count=3)
    }
    for body, reason in (
        (oversized, Reason.ENVELOPE_TOO_LARGE),
        (garbage, Reason.ENVELOPE_MALFORMED),
    ):
        message = quarantined[sha256(body).hexdigest()]
        headers = message.headers or {}
        assert headers[H_BODY_KEPT] is False
        assert headers[H_REASON] == reason.value
        assert message.type == RECORD_TYPE
        record = QuarantineRecord.model_validate_json(message.body)
        assert (record.reason, record.body_bytes, record.publisher) == (
            reason,
            len(body),
            world.agency,
        )
        assert record.body_sha256 == sha256(body).hexdigest()
        assert record.header is None  # never read: too large, or not an envelope
        assert len(message.body) < 1 * KiB  # the body is not kept
    kept = quarantined[sha256(tampered).hexdigest()]
    assert (kept.headers or {})[H_BODY_KEPT] is True
    assert kept.body == bytes(tampered)
    assert (kept.headers or {})[H_REASON] == Reason.PAYLOAD_TAMPERED.value
    assert (kept.headers or {})[H_PUBLISHER] == world.agency
    assert (kept.headers or {})[H_ENVELOPE]
    held = sum(len(m.body) for m in quarantined.values())
    print(
        f"\npublished {len(oversized) + len(garbage) + len(tampered)} bytes; quarantine held {held}"
    )
    assert held < len(tampered) + 2 * KiB

    # The sender is told, on its own events queue, read with its own account.
    events = await _events(world, world.deployment.names.events_queue(A), count=3, as_agency=True)
    assert sorted(str(e.reason) for e in events) == sorted(
        r.value
        for r in (Reason.ENVELOPE_TOO_LARGE, Reason.ENVELOPE_MALFORMED, Reason.PAYLOAD_TAMPERED)
    )
    assert all(e.type is EventType.REJECTED and e.party == A for e in events)


async def test_the_quarantine_and_the_events_queues_carry_their_bounding_policies(
    world: World,
) -> None:
    names = world.deployment.names
    expected = {
        names.quarantine_queue: (f"{names.prefix}-quarantine", SMALL.quarantine),
        names.events_queue(A): (f"{names.prefix}-events", SMALL.events),
        names.events_queue(HUB): (f"{names.prefix}-events", SMALL.events),
        names.events_operators_queue: (
            f"{names.prefix}-events-operators",
            SMALL.operators_events,
        ),
    }
    applied = await asyncio.gather(*(_applied_policy(queue) for queue in expected))
    for (queue, (policy, bound)), (name, definition) in zip(expected.items(), applied, strict=True):
        assert name == policy, queue
        assert definition["max-length-bytes"] == bound.max_bytes, queue
        assert definition["max-length"] == bound.max_messages, queue
        assert definition["overflow"] == "drop-head", queue
        if bound.max_age_seconds is not None:
            assert definition["message-ttl"] == bound.max_age_seconds * 1000, queue
        if queue != names.quarantine_queue:
            assert definition["delivery-limit"] == SMALL.events_delivery_limit, queue
            assert "dead-letter-exchange" not in definition, queue


async def test_a_full_inbox_refuses_further_copies_which_are_parked_and_the_sender_told(
    world: World,
) -> None:
    """Nobody fetches B's inbox (bound: 2 messages). Documents to B alone, then one to B and
    the hub in one publish, each sent once the previous one is told: once the inbox is at
    its bound the broker refuses B's copies, the router parks them (``inbox_full``), routes
    the hub's, and tells the sender which recipient did not get them."""
    names, pki = world.deployment.names, world.pki
    inbox = names.inbox_queue(B)
    name, definition = await _applied_policy(inbox)
    assert name == f"{names.prefix}-inboxes"
    assert (definition["max-length"], definition["overflow"]) == (2, "reject-publish")
    both = seal(
        document_edxml(A, [B, VIA_HUB], 14),
        SealParties(
            kind=Kind.DOCUMENT,
            sender=A,
            sender_key=pki.agency(A).key,
            sender_cert=pki.agency(A).certificate,
            recipients={code: pki.agency(code).certificate for code in (B, VIA_HUB)},
            document_id=document_id(A, 14),
            business_type=0,
        ),
    )
    told: list[Event] = []
    for body in [*(sealed_document(pki, n) for n in (10, 11, 12, 13)), both]:
        await world.publish_as_agency(body)
        about = read_frame(body).header.document_id
        # B's fate is told: routed to B, or parked for it.
        while not any(e.document_id == about and B in e.recipients for e in told):
            told += await _events(world, names.events_operators_queue, count=1)
    while not any(e.document_id == document_id(A, 14) and VIA_HUB in e.recipients for e in told):
        told += await _events(world, names.events_operators_queue, count=1)  # the hub's fate
    refused = {e.document_id: e for e in told if e.type is EventType.DEAD_LETTERED}
    routed = {e.document_id: e.recipients for e in told if e.type is EventType.ROUTED}
    # The broker's bound on a quorum queue is reached once it holds the bound; the copy in
    # flight then may still be taken: 2 or 3 kept, in order, the rest parked.
    to_b = [document_id(A, n) for n in (10, 11, 12, 13, 14)]
    queued = await _depth(world, inbox)
    assert 2 <= queued <= 3
    assert list(refused) == to_b[queued:]
    assert all(
        (e.party, e.reason, e.recipients) == (A, Reason.INBOX_FULL, (B,)) for e in refused.values()
    )
    assert routed[document_id(A, 14)] == (VIA_HUB,)
    # Delivering the parked copies leaves them parked while B's inbox is still full ...
    assert await _deliver_held(world) == HeldDelivery(delivered=0, still_full=len(refused), left=0)
    kept = [read_frame(m.body).header.document_id for m in await _queued(world, inbox)]
    assert kept == to_b[: len(kept)]
    # ... and, once B took its inbox, puts them there, marked as repeats.
    assert await _deliver_held(world) == HeldDelivery(delivered=len(refused), still_full=0, left=0)
    delivered = await _take(world, inbox, count=len(refused))
    assert [read_frame(m.body).header.document_id for m in delivered] == list(refused)
    assert all((m.headers or {}).get(H_REPUBLISHED) for m in delivered)
    # The hub got document 14: the first publish, then the repeat that found who refused
    # (marked, so its adapter drops it).
    hub = await _take(world, names.inbox_queue(HUB), count=2)
    assert {read_frame(m.body).header.document_id for m in hub} == {document_id(A, 14)}
    assert [bool((m.headers or {}).get(H_REPUBLISHED)) for m in hub] == [False, True]


async def _depth(world: World, queue_name: str) -> int:
    async with await aio_pika.connect(world.amqp_url) as guest:
        channel = await guest.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def _queued(world: World, queue_name: str) -> list[AbstractIncomingMessage]:
    """Every message in ``queue_name``, taken."""
    return await _take(world, queue_name, count=await _depth(world, queue_name))


async def _deliver_held(world: World) -> HeldDelivery:
    """``backbone router deliver-held``, as the router's account."""
    deployment = world.deployment
    async with await world.connect(deployment.router_user) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return await deliver_held(
            channel, deployment.directory, deployment.names, router_account=deployment.router_user
        )


async def test_publishing_past_the_bounds_keeps_the_quarantine_and_events_queues_bounded(
    world: World,
) -> None:
    names = world.deployment.names
    bodies = [b"junk %02d " % number + b"x" * (8 * KiB) for number in range(8)]
    for body in bodies:  # one at a time: each its own quarantine record and event message
        await world.publish_as_agency(body)
        await _events(world, names.events_operators_queue, count=1)

    async with await aio_pika.connect(world.amqp_url) as guest:  # operators' view
        channel = await guest.channel()
        quarantine = await channel.declare_queue(names.quarantine_queue, passive=True)
        events = await channel.declare_queue(names.events_queue(A), passive=True)
        counts = (
            quarantine.declaration_result.message_count,
            events.declaration_result.message_count,
        )
    assert counts == (SMALL.quarantine.max_messages, SMALL.events.max_messages)
    # drop-head: the oldest went, the newest are there.
    kept = await _take(world, names.quarantine_queue, count=SMALL.quarantine.max_messages)
    assert [(m.headers or {})[H_BODY_SHA256] for m in kept] == [
        sha256(body).hexdigest() for body in bodies[-SMALL.quarantine.max_messages :]
    ]
    told = await _events(world, names.events_queue(A), count=SMALL.events.max_messages)
    assert all(e.reason is Reason.ENVELOPE_MALFORMED for e in told)


async def test_a_large_refused_envelope_with_a_readable_header_is_recorded_with_its_header(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    envelope = sealed_document(pki, 2)
    header = read_frame(envelope).header
    quarantine = Quarantine(keep_body_bytes=len(envelope))
    refused = Reject(Reason.PAYLOAD_TAMPERED, "payload digest differs", header, authenticated=True)

    whole = await quarantine.message(refused, envelope, publisher="a")
    assert (whole.body, (whole.headers or {})[H_BODY_KEPT]) == (envelope, True)

    bulky = envelope + b"\0" * (256 * KiB)
    message = await quarantine.message(refused, bulky, publisher="a")
    assert (message.headers or {})[H_BODY_KEPT] is False
    record = QuarantineRecord.model_validate_json(message.body)
    assert record.header is not None
    assert record.header_authenticated
    assert (record.header.envelope_id, record.header.document_id) == (
        header.envelope_id,
        document_id(A, 2),
    )
    assert (record.header.sender, record.header.recipients) == (A, (B,))
    der = pki.agency(A).certificate.public_bytes(Encoding.DER)
    assert record.header.sender_certificate_sha256 == sha256(der).hexdigest()
    assert (record.body_bytes, record.body_sha256) == (len(bulky), sha256(bulky).hexdigest())
    assert len(message.body) < 2 * KiB  # no key wraps, no certificate, no bulk


# -- finding 6: per-account connection and channel limits ------------------------------------


async def test_an_agency_account_cannot_open_more_connections_or_channels_than_its_limit(
    world: World,
) -> None:
    management = ManagementClient.from_env()
    deployment = world.deployment
    assert await management.user_limits(world.agency) == {"max-connections": 2, "max-channels": 3}
    assert await management.user_limits(deployment.account_of(HUB)) == SMALL.hub.definition()
    assert await management.user_limits(deployment.router_user) == SMALL.router.definition()

    first, second = await world.connect(world.agency), await world.connect(world.agency)
    try:
        with pytest.raises(aiormq.exceptions.AMQPError):  # the broker closes it while opening
            await world.connect(world.agency)
        other = await world.connect(deployment.account_of(B))  # limits are per account
        await other.close()
        channels: list[AbstractChannel] = [
            await first.channel(),
            await first.channel(),
            await second.channel(),
        ]
        with pytest.raises(aiormq.exceptions.ConnectionNotAllowed, match="user limit of \\(3\\)"):
            await second.channel()
        assert all(not channel.is_closed for channel in channels[:2])
    finally:
        for connection in (first, second):
            if not connection.is_closed:
                await connection.close()


# -- configuration -----------------------------------------------------------------------------


def test_definitions_carry_each_accounts_limits_and_the_bounding_policies(tmp_path: Path) -> None:
    directory = (
        DirectoryBuilder()
        .direct(A, broker_account="a")
        .hub(HUB, VIA_HUB, broker_account="hub")
        .via_hub(VIA_HUB, HUB)
        .build()
    )
    names = Names()
    specs = plan_accounts(directory, names, router_user="vdx-router", bounds=SMALL)
    exported = definitions(specs, {s.user: "pw" for s in specs}, plan_policies(names, SMALL))
    limits = {user["name"]: user["limits"] for user in exported["users"]}
    assert limits == {
        "vdx-router": {"max-connections": 64, "max-channels": 1024},
        "hub": {"max-connections": 32, "max-channels": 256},
        "a": {"max-connections": 2, "max-channels": 3},
    }
    policies = {p["name"]: p for p in exported["policies"]}
    assert policies["vdx-quarantine"]["pattern"] == "^vdx\\.quarantine$"
    assert policies["vdx-events-operators"]["priority"] > policies["vdx-events"]["priority"]
    json.dumps(exported)  # importable as written


def test_bounds_load_from_yaml_and_refuse_unknown_keys_in_one_line(tmp_path: Path) -> None:
    good = tmp_path / "bounds.yaml"
    good.write_text("agency: {max_connections: 4, max_channels: 16}\n")
    loaded = BrokerBounds.load(good)
    assert loaded.agency == AccountLimits(max_connections=4, max_channels=16)
    assert loaded.hub == BrokerBounds().hub
    bad = tmp_path / "bad.yaml"
    bad.write_text("agency: {max_conections: 4, max_channels: 16}\n")
    with pytest.raises(ConfigurationError, match="max_conections"):
        BrokerBounds.load(bad)
    dropping = tmp_path / "dropping.yaml"
    dropping.write_text("inboxes: {max_bytes: 1024, max_messages: 10, overflow: drop-tail}\n")
    with pytest.raises(ConfigurationError, match=r"inboxes\.overflow") as refused:
        BrokerBounds.load(dropping)
    assert "\n" not in str(refused.value)


# -- helpers -----------------------------------------------------------------------------------


async def _applied_policy(queue: str, timeout: float = 30.0) -> tuple[str | None, dict[str, Any]]:
    """The policy the broker applies to ``queue`` (its statistics lag a few seconds)."""
    management = ManagementClient.from_env()
    deadline = time.monotonic() + timeout
    while True:
        name, definition = await management.queue_policy(queue)
        if name is not None or time.monotonic() > deadline:
            return name, definition
        await asyncio.sleep(0.5)


async def _take(
    world: World, queue_name: str, *, count: int, as_agency: bool = False
) -> list[AbstractIncomingMessage]:
    user = world.agency if as_agency else None
    connection = await (world.connect(user) if user else aio_pika.connect(world.amqp_url))
    taken: list[AbstractIncomingMessage] = []
    async with connection:
        queue = await (await connection.channel()).get_queue(queue_name, ensure=False)
        deadline = time.monotonic() + 20
        while len(taken) < count and time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append(message)
    assert len(taken) == count, f"{len(taken)} of {count} messages in {queue_name}"
    return taken


async def _events(
    world: World, queue_name: str, *, count: int, as_agency: bool = False
) -> list[Event]:
    """``count`` events from ``queue_name`` (a message may hold several)."""
    events: list[Event] = []
    while len(events) < count:
        for message in await _take(world, queue_name, count=1, as_agency=as_agency):
            events.extend(decode_events(message.body))
    return events
