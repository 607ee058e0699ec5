"""Who may do what at the broker: provisioned accounts have least privilege."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from backbone.broker.management import ManagementClient
from backbone.broker.provision import (
    definitions,
    load_or_create_passwords,
    plan_accounts,
    plan_policies,
    rabbit_password_hash,
)
from backbone.directory import DirectoryBuilder
from backbone.router.pipeline import Pipeline
from backbone.router.service import Router, RouterOptions
from backbone.store import open_store
from backbone.wire.names import H_BODY_SHA256, Names
from backbone.wire.quarantine import QuarantineRecord
from tests.support import make_pki
from tests.support.provisioning import A, B, account_url, get_one, sealed_document
from tests.support.provisioning import provisioned as provisioned_deployment

pytestmark = pytest.mark.broker


@pytest.fixture
async def provisioned(
    amqp_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Names, dict[str, str], str]]:
    async with provisioned_deployment(amqp_url, tmp_path) as deployment:
        yield deployment.names, deployment.passwords, deployment.tag


async def _connect(amqp_url: str, user: str, password: str) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(account_url(amqp_url, user, password))


async def test_an_agency_reads_its_own_inbox_and_publishes_to_submit_only(
    amqp_url: str, provisioned: tuple[Names, dict[str, str], str]
) -> None:
    names, passwords, tag = provisioned
    user = f"a-{tag}"
    async with await _connect(amqp_url, user, passwords[user]) as connection:
        channel = await connection.channel(publisher_confirms=True)
        submit = await channel.get_exchange(names.submit_exchange, ensure=False)
        await submit.publish(aio_pika.Message(b"x", user_id=user), routing_key="envelope")
        inbox = await channel.get_queue(names.inbox_queue(A), ensure=False)
        assert await inbox.get(fail=False) is None


async def test_an_agency_cannot_read_another_agencys_inbox_or_events_nor_the_quarantine(
    amqp_url: str, provisioned: tuple[Names, dict[str, str], str]
) -> None:
    names, passwords, tag = provisioned
    user = f"a-{tag}"
    async with await _connect(amqp_url, user, passwords[user]) as connection:
        for queue_name in (names.inbox_queue(B), names.events_queue(B), names.quarantine_queue):
            channel = await connection.channel()
            other = await channel.get_queue(queue_name, ensure=False)
            with pytest.raises(ChannelAccessRefused):
                await other.get(fail=False)


async def test_an_agency_cannot_publish_as_another_agency(
    amqp_url: str, provisioned: tuple[Names, dict[str, str], str]
) -> None:
    names, passwords, tag = provisioned
    user = f"a-{tag}"
    async with await _connect(amqp_url, user, passwords[user]) as connection:
        channel = await connection.channel(publisher_confirms=True)
        submit = await channel.get_exchange(names.submit_exchange, ensure=False)
        with pytest.raises(ChannelPreconditionFailed):
            await submit.publish(aio_pika.Message(b"x", user_id=f"b-{tag}"), routing_key="envelope")


async def test_an_agency_cannot_bypass_the_router_or_touch_the_topology(
    amqp_url: str, provisioned: tuple[Names, dict[str, str], str]
) -> None:
    names, passwords, tag = provisioned
    user = f"a-{tag}"
    refused = [
        lambda ch: ch.declare_queue(f"{names.prefix}.mine", durable=True),
        lambda ch: ch.declare_exchange(f"{names.prefix}.mine", aio_pika.ExchangeType.FANOUT),
        lambda ch: ch.queue_delete(names.inbox_queue(A)),
        lambda ch: ch.queue_delete(names.directory_stream),  # it may read versions, no more
        lambda ch: ch.exchange_delete(names.submit_exchange),
    ]
    async with await _connect(amqp_url, user, passwords[user]) as connection:
        for attempt in refused:
            channel = await connection.channel()
            with pytest.raises(ChannelAccessRefused):
                await attempt(channel)
        channel = await connection.channel(publisher_confirms=True)
        tier_1 = await channel.get_exchange(
            f"{names.prefix}.tier.1.central-provincial", ensure=False
        )
        with pytest.raises(ChannelAccessRefused):  # straight to a recipient, past the router
            await tier_1.publish(aio_pika.Message(b"x", user_id=user), routing_key="H41.00.00.000")


def test_definitions_carry_rabbitmq_sha256_hashes_not_passwords(tmp_path: Path) -> None:
    directory = DirectoryBuilder().direct(A).build()
    specs = plan_accounts(directory, Names(), router_user="vdx-router")
    passwords = load_or_create_passwords(tmp_path / "p.yaml", [s.user for s in specs])
    exported = json.dumps(definitions(specs, passwords))
    assert all(password not in exported for password in passwords.values())
    assert (tmp_path / "p.yaml").stat().st_mode & 0o777 == 0o600
    # RabbitMQ's documented sha256 scheme, checked against a fixed salt.
    assert rabbit_password_hash("test12", salt=bytes.fromhex("908dc60a")) == (
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    )


async def test_the_router_routes_with_its_provisioned_account(
    amqp_url: str, provisioned: tuple[Names, dict[str, str], str], tmp_path: Path
) -> None:
    names, passwords, tag = provisioned
    pki = make_pki(tmp_path / "pki")
    directory = (
        DirectoryBuilder()
        .direct(A, broker_account=f"a-{tag}")
        .direct(B, broker_account=f"b-{tag}")
        .build()
    )
    router_user = f"router-{tag}"
    store = await open_store("memory://")
    router = Router(
        RouterOptions(
            amqp_url=account_url(amqp_url, router_user, passwords[router_user]), names=names
        ),
        directory=directory,
        pipeline=Pipeline(directory, pki.validator(), store, names),
        store=store,
    )
    await router.start()
    try:
        body = sealed_document(pki, 1)
        rejected = b"not an envelope"  # a rejection goes to the quarantine queue
        async with await _connect(amqp_url, f"a-{tag}", passwords[f"a-{tag}"]) as connection:
            channel = await connection.channel(publisher_confirms=True)
            submit = await channel.get_exchange(names.submit_exchange, ensure=False)
            for payload in (body, rejected):
                await submit.publish(
                    aio_pika.Message(payload, user_id=f"a-{tag}"), routing_key="envelope"
                )
        async with await _connect(amqp_url, f"b-{tag}", passwords[f"b-{tag}"]) as connection:
            inbox = await (await connection.channel()).get_queue(names.inbox_queue(B), ensure=False)
            message = await get_one(inbox)
            assert message.body == body
        guest = await aio_pika.connect(amqp_url)
        async with guest:
            quarantine = await (await guest.channel()).get_queue(
                names.quarantine_queue, ensure=False
            )
            quarantined = await get_one(quarantine)  # garbage: a record of it, not the body
            assert (quarantined.headers or {})[H_BODY_SHA256] == sha256(rejected).hexdigest()
            assert QuarantineRecord.model_validate_json(quarantined.body).body_bytes == len(
                rejected
            )
    finally:
        await router.stop()


async def test_provisioning_sets_the_events_policy_operators_tune(
    provisioned: tuple[Names, dict[str, str], str],
) -> None:
    names, _, _ = provisioned
    policy = await ManagementClient.from_env().policy(f"{names.prefix}-events")
    assert policy is not None
    assert policy["pattern"] == f"^{names.prefix}\\.events\\."
    assert policy["definition"]["delivery-limit"] == 20
    # Bounded, oldest dropped first; nothing dead-lettered (it would only move the growth).
    assert policy["definition"]["overflow"] == "drop-head"
    assert policy["definition"]["max-length-bytes"] == 16 * 1024 * 1024
    assert "dead-letter-exchange" not in policy["definition"]
    exported = definitions([], {}, plan_policies(names))
    assert [p["name"] for p in exported["policies"]] == [
        f"{names.prefix}-quarantine",
        f"{names.prefix}-events",
        f"{names.prefix}-events-operators",
        f"{names.prefix}-inboxes",
    ]
