"""The broker topology: planned from the directory, declared idempotently, routing as the
directory says (each test declares under its own prefix and deletes it afterwards)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, HeadersType
from typer.testing import CliRunner

from backbone.broker.management import ManagementClient
from backbone.directory import Connection, Directory, DirectoryBuilder, generate_directory
from backbone.errors import DirectoryError
from backbone.organ import OrganCode
from backbone.router.topology import BindingSpec, TopologyPlan, apply_topology, plan_topology
from backbone.router.topology_cli import app
from backbone.wire.names import Names

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# Tier 1..4 direct agencies; a ministry (G05) connecting directly while its bureaus use the
# ministry's hub; two provinces, each behind its hub; inactive entries of both kinds.
G22, G22_2, G22_3, G22_4 = "000.00.00.G22", "000.00.01.G22", "000.01.01.G22", "001.01.01.G22"
G05, G05_BUREAU, G05_UNIT = "000.00.00.G05", "000.00.01.G05", "000.02.01.G05"
G07_INACTIVE = "000.00.00.G07"
H53, H53_DISTRICT, H53_COMMUNE, H53_UNIT = (
    "000.00.00.H53",
    "000.00.32.H53",
    "000.21.32.H53",
    "001.21.32.H53",
)
H29, H29_DISTRICT = "000.00.00.H29", "000.00.30.H29"
HUB_G05, HUB_H53, HUB_H29 = "10.05.W00", "00.53.W00", "00.29.W00"


def sample_directory() -> Directory:
    return (
        DirectoryBuilder()
        .direct(G22)
        .direct(G22_2)
        .direct(G22_3)
        .direct(G22_4)
        .direct(G07_INACTIVE, active=False)
        .direct(G05)
        .hub(HUB_G05, G05)
        .via_hub(G05_BUREAU, HUB_G05)
        .via_hub(G05_UNIT, HUB_G05)
        .hub(HUB_H53, H53)
        .via_hub(H53, HUB_H53)
        .via_hub(H53_DISTRICT, HUB_H53)
        .via_hub(H53_COMMUNE, HUB_H53)
        .via_hub(H53_UNIT, HUB_H53, active=False)
        .hub(HUB_H29, H29)
        .via_hub(H29, HUB_H29)
        .via_hub(H29_DISTRICT, HUB_H29)
        .build()
    )


def key(code: str) -> str:
    return OrganCode.parse(code).routing_key


def topic_matches(pattern: str, routing_key: str) -> bool:
    """RabbitMQ's topic matching: ``*`` one word, ``#`` zero or more."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))


def queues_reached(plan: TopologyPlan, exchange: str, routing_key: str) -> set[str]:
    return {
        b.queue
        for b in plan.bindings
        if b.exchange == exchange and topic_matches(b.routing_key, routing_key)
    }


# -- the plan (no broker) -----------------------------------------------------------------


def test_topic_matcher_used_by_these_tests_agrees_with_rabbitmq_semantics() -> None:
    assert topic_matches("H53.#", "H53.00.00.000")
    assert topic_matches("*.H53.#", "routed.H53.32.21.000")
    assert not topic_matches("*.H53.#", "H53.32.21.000.x")
    assert not topic_matches("G05.01.#", "G05.00.00.000")
    assert topic_matches("#", "anything.at.all")


def test_every_agency_of_the_country_reaches_exactly_its_serving_systems_inbox() -> None:
    directory = Directory(generate_directory(0))
    names = Names()
    plan = plan_topology(directory, names)
    # The synthetic country has ministries that connect directly while a hub of theirs
    # serves their subtree: the case a plain subtree binding would deliver twice.
    nested = [
        a
        for a in directory
        if a.connection is Connection.DIRECT
        and any(a.organ_code.is_within(root) for hub in directory.hubs for root in hub.serves)
    ]
    assert nested
    for agency in directory:
        code = agency.organ_code
        system = directory.serving_system(code).system_id
        exchange = names.tier_exchange(directory.tier_of(code))
        assert queues_reached(plan, exchange, code.routing_key) == {names.inbox_queue(system)}
        event_key = Names.event_routing_key("routed", code)
        assert queues_reached(plan, names.events_exchange, event_key) == {
            names.events_queue(system),
            names.events_operators_queue,
        }


def test_plan_has_one_inbox_and_one_events_queue_per_connected_system_not_per_agency() -> None:
    directory = Directory(generate_directory(0))
    plan = plan_topology(directory, Names())
    systems = len(directory.hubs) + sum(a.connection is Connection.DIRECT for a in directory)
    inboxes = [q for q in plan.queues if q.name.startswith("vdx.inbox.")]
    events = [q for q in plan.queues if q.name.startswith("vdx.events.")]
    assert len(inboxes) == systems
    assert len(events) == systems + 1  # and the operators' queue
    assert len(plan.queues) == 2 * systems + 9  # 7 fixed, the chunk queue, the directory stream
    assert len(plan.bindings) == len(set(plan.bindings))


def test_hub_binds_its_subtree_on_every_tier_from_the_served_roots_tier_down() -> None:
    names = Names()
    plan = plan_topology(sample_directory(), names)
    inbox = names.inbox_queue(HUB_H53)
    assert {(b.exchange, b.routing_key) for b in plan.bindings if b.queue == inbox} == {
        (names.tier_exchange(tier), "H53.#") for tier in sample_directory().tiers.tiers
    }


def test_inactive_agencies_keep_their_inbox_and_bindings() -> None:
    names = Names()
    plan = plan_topology(sample_directory(), names)
    inbox = names.inbox_queue(G07_INACTIVE)
    assert inbox in {q.name for q in plan.queues}
    tier_1 = names.tier_exchange(sample_directory().tier_of(G07_INACTIVE))
    assert BindingSpec(tier_1, inbox, key(G07_INACTIVE)) in plan.bindings


def test_guarded_queues_carry_delivery_limit_and_at_least_once_dead_lettering() -> None:
    names = Names()
    plan = plan_topology(sample_directory(), names, delivery_limit=7)
    queues = {q.name: q.arguments for q in plan.queues}
    expected = {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": names.dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert queues[names.inbound_queue] == expected
    assert queues[names.inbox_queue(HUB_H53)] == expected
    assert queues[names.dead_letter_parked] == {"x-queue-type": "quorum"}
    # Bounds are policies (operators tune them), except the directory stream's retention.
    stream = queues.pop(names.directory_stream)
    assert stream["x-queue-type"] == "stream"
    assert stream["x-stream-max-segment-size-bytes"] < stream["x-max-length-bytes"]
    assert not any("x-max-length-bytes" in arguments for arguments in queues.values())


def test_with_the_broker_delivery_limit_off_guarded_queues_still_dead_letter_but_have_none() -> (
    None
):
    names = Names()
    plan = plan_topology(sample_directory(), names, delivery_limit=None)
    queues = {q.name: q.arguments for q in plan.queues}
    expected = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": names.dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert queues[names.inbound_queue] == expected
    assert queues[names.inbox_queue(HUB_H53)] == expected


def test_a_hub_id_clashing_with_the_operators_events_queue_is_refused() -> None:
    directory = DirectoryBuilder().hub("operators", H53).via_hub(H53, "operators").build()
    with pytest.raises(DirectoryError, match=r"events\.operators would be declared twice"):
        plan_topology(directory, Names())


# -- on the broker ------------------------------------------------------------------------


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    names = Names(prefix=f"t{uuid.uuid4().hex[:8]}")
    yield names
    await ManagementClient.from_env().delete_prefixed(names.prefix)


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield connection


@pytest.fixture
async def channel(connection: AbstractConnection) -> AbstractChannel:
    return await connection.channel(publisher_confirms=True, on_return_raises=True)


async def publish(
    channel: AbstractChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    headers: HeadersType | None = None,
) -> None:
    """Publish persistently and wait for the broker's confirm (then it is in every queue)."""
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(
        aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
            message_id=str(uuid.uuid4()),
        ),
        routing_key=routing_key,
    )


async def next_message(
    channel: AbstractChannel, queue_name: str, *, within: float = 5.0
) -> AbstractIncomingMessage | None:
    """The next message of the queue, waiting up to ``within`` seconds for one."""
    queue = await channel.get_queue(queue_name, ensure=False)
    deadline = time.monotonic() + within
    while (message := await queue.get(fail=False)) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return message


async def take_all(channel: AbstractChannel, queue_name: str) -> list[bytes]:
    """Every message in the queue, acked."""
    queue = await channel.get_queue(queue_name, ensure=False)
    bodies = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        bodies.append(message.body)
    return bodies


async def test_apply_twice_declares_the_same_topology_and_keeps_queued_messages(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    management = ManagementClient.from_env()
    first = await apply_topology(channel, directory, names)
    await publish(channel, names.tier_exchange(directory.tier_of(G22)), key(G22), b"kept")
    queues = await management.queue_names(prefix=f"{names.prefix}.")
    exchanges = await management.exchange_names(prefix=f"{names.prefix}.")
    bindings = {q: await management.queue_bindings(q) for q in queues}

    second = await apply_topology(channel, directory, names)

    assert (second.exchanges, second.queues, second.bindings) == (
        first.exchanges,
        first.queues,
        first.bindings,
    )
    assert len(queues) == first.queues
    assert len(exchanges) == first.exchanges
    assert sum(len(b) for b in bindings.values()) == first.bindings
    assert await management.queue_names(prefix=f"{names.prefix}.") == queues
    assert await management.exchange_names(prefix=f"{names.prefix}.") == exchanges
    assert {q: await management.queue_bindings(q) for q in queues} == bindings
    assert await take_all(channel, names.inbox_queue(G22)) == [b"kept"]


async def test_reapplying_with_another_delivery_limit_is_refused_and_leaves_the_channel_open(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names, delivery_limit=5)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-delivery-limit"):
        await apply_topology(channel, directory, names, delivery_limit=6)
    assert not channel.is_closed
    await publish(channel, names.submit_exchange, names.submit_routing_key, b"still usable")


async def test_apply_refuses_a_message_bound_no_broker_can_carry(
    channel: AbstractChannel, names: Names
) -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        await apply_topology(channel, sample_directory(), names, max_message_bytes=600 << 20)


async def test_each_tier_exchange_delivers_a_direct_agencys_key_to_its_inbox(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names)
    codes = (G22, G22_2, G22_3, G22_4)
    assert [directory.tier_of(c).number for c in codes] == [1, 2, 3, 4]
    for code in codes:
        exchange = names.tier_exchange(directory.tier_of(code))
        await publish(channel, exchange, key(code), f"for {code}".encode())
    for code in codes:
        assert await take_all(channel, names.inbox_queue(code)) == [f"for {code}".encode()]
    assert await take_all(channel, names.unroutable_parked) == []


async def test_a_provinces_hub_receives_its_subtree_at_every_tier_and_no_other_hub_does(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names)
    codes = (H53, H53_DISTRICT, H53_COMMUNE, H53_UNIT)
    assert [directory.tier_of(c).number for c in codes] == [1, 2, 3, 4]
    for code in codes:
        await publish(
            channel, names.tier_exchange(directory.tier_of(code)), key(code), code.encode()
        )
    assert sorted(await take_all(channel, names.inbox_queue(HUB_H53))) == sorted(
        c.encode() for c in codes
    )
    assert await take_all(channel, names.inbox_queue(HUB_H29)) == []
    assert await take_all(channel, names.inbox_queue(HUB_G05)) == []


async def test_a_directly_connected_ministry_gets_its_documents_alone_and_its_hub_the_bureaus(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names)
    for code in (G05, G05_BUREAU, G05_UNIT):
        await publish(
            channel, names.tier_exchange(directory.tier_of(code)), key(code), code.encode()
        )
    assert await take_all(channel, names.inbox_queue(G05)) == [G05.encode()]
    assert sorted(await take_all(channel, names.inbox_queue(HUB_G05))) == sorted(
        [G05_BUREAU.encode(), G05_UNIT.encode()]
    )


async def test_a_cc_header_reaches_several_inboxes_in_one_publish(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names)
    tier_1 = names.tier_exchange(directory.tier_of(G22))
    assert {directory.tier_of(c).number for c in (G22, G05, H53, H29)} == {1}
    await publish(channel, tier_1, key(G22), b"one publish", {"CC": [key(G05), key(H53), key(H29)]})
    for inbox in (G22, G05, HUB_H53, HUB_H29):
        assert await take_all(channel, names.inbox_queue(inbox)) == [b"one publish"]
    assert await take_all(channel, names.unroutable_parked) == []


async def test_an_unroutable_key_lands_in_the_unroutable_parked_and_notify_queues(
    channel: AbstractChannel, names: Names
) -> None:
    directory = sample_directory()
    await apply_topology(channel, directory, names)
    await publish(channel, names.tier_exchange(directory.tier_of(G22)), "H99.00.00.000", b"nobody")
    # A code published on another tier's exchange is unroutable too: tiers do not mix.
    await publish(channel, names.tier_exchange(directory.tier_of(G22_2)), key(G22), b"wrong tier")
    assert await take_all(channel, names.unroutable_parked) == [b"nobody", b"wrong tier"]
    assert await take_all(channel, names.unroutable_notify) == [b"nobody", b"wrong tier"]
    assert await take_all(channel, names.inbox_queue(G22)) == []


async def test_the_inbound_queue_dead_letters_a_message_after_delivery_limit_redeliveries(
    channel: AbstractChannel, names: Names
) -> None:
    limit = 2
    await apply_topology(channel, sample_directory(), names, delivery_limit=limit)
    await publish(channel, names.submit_exchange, names.submit_routing_key, b"poison")
    for _ in range(limit + 1):
        message = await next_message(channel, names.inbound_queue)
        assert message is not None, "the message left the inbound queue too early"
        # reject, not nack: from RabbitMQ 4.3 only basic.reject counts as a failed delivery.
        await message.reject(requeue=True)
    for queue_name in (names.dead_letter_parked, names.dead_letter_notify):
        dead = await next_message(channel, queue_name)
        assert dead is not None, f"nothing dead-lettered into {queue_name}"
        assert dead.body == b"poison"
        assert dead.headers["x-first-death-queue"] == names.inbound_queue
        assert dead.headers["x-first-death-reason"] == "delivery_limit"
        await dead.ack()
    assert await take_all(channel, names.inbound_queue) == []


async def test_events_reach_the_partys_events_queue_and_the_operators_queue(
    channel: AbstractChannel, names: Names
) -> None:
    await apply_topology(channel, sample_directory(), names)
    for event, code in (("routed", G22), ("rejected", H53_COMMUNE), ("status", G05_UNIT)):
        routing_key = Names.event_routing_key(event, OrganCode.parse(code))
        await publish(channel, names.events_exchange, routing_key, routing_key.encode())
    assert await take_all(channel, names.events_queue(G22)) == [b"routed.G22.00.00.000"]
    assert await take_all(channel, names.events_queue(HUB_H53)) == [b"rejected.H53.32.21.000"]
    assert await take_all(channel, names.events_queue(HUB_G05)) == [b"status.G05.01.02.000"]
    assert await take_all(channel, names.events_queue(HUB_H29)) == []
    assert await take_all(channel, names.events_queue(G05)) == []
    assert len(await take_all(channel, names.events_operators_queue)) == 3


async def test_the_synthetic_country_applies_in_seconds_not_minutes(
    channel: AbstractChannel, names: Names
) -> None:
    directory = Directory(generate_directory(0))
    started = time.perf_counter()
    report = await apply_topology(channel, directory, names)
    again = await apply_topology(channel, directory, names)
    elapsed = time.perf_counter() - started
    print(f"synthetic country: {report}; again in {again.seconds:.2f} s")
    systems = len(directory.hubs) + sum(a.connection is Connection.DIRECT for a in directory)
    assert report.queues == 2 * systems + 9  # the chunk queue and the directory stream too
    assert len(await ManagementClient.from_env().queue_names(prefix=f"{names.prefix}.")) == (
        report.queues
    )
    assert elapsed < 60


# -- command line and docs ----------------------------------------------------------------

SAMPLE_YAML = """\
version: 1
hubs:
  - {id: "00.53.W00", name: Trục LGSP tỉnh Tây Ninh, serves: ["000.00.00.H53"],
     broker_account: hub-00.53.W00}
agencies:
  - {organ_code: "000.00.00.G22", name: Văn phòng Chính phủ, connection: direct,
     broker_account: agency-000.00.00.G22}
  - {organ_code: "000.00.00.H53", name: UBND tỉnh Tây Ninh, connection: hub, hub: "00.53.W00"}
"""


@pytest.fixture
def sample_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(SAMPLE_YAML, "utf-8")
    return path


def test_show_lists_the_planned_topology_without_a_broker(sample_file: Path) -> None:
    result = runner.invoke(app, ["show", "--directory", str(sample_file), "--prefix", "demo"])
    assert result.exit_code == 0, result.output
    assert "queues (13), all durable quorum but the stream" in result.stdout
    assert "demo.tier.1.central-provincial -> demo.inbox.00.53.W00  H53.#" in result.stdout
    assert "demo.tier.4.unit -> demo.inbox.00.53.W00  H53.#" in result.stdout
    assert "demo.tier.1.central-provincial -> demo.inbox.000.00.00.G22  G22.00.00.000" in (
        result.stdout
    )
    assert "demo.events -> demo.events.operators  #" in result.stdout


def test_show_without_the_broker_delivery_limit_says_whose_count_applies(
    sample_file: Path,
) -> None:
    args = ["show", "--directory", str(sample_file), "--prefix", "demo"]
    result = runner.invoke(app, [*args, "--no-broker-delivery-limit"])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"demo\.router\.inbound +delivery-limit=\(broker's\) dead-letter=demo\.dead-letter",
        result.stdout,
    )
    assert "delivery-limit=5" not in result.stdout
    mermaid = runner.invoke(app, [*args, "--no-broker-delivery-limit", "--mermaid"])
    assert "dead-letter (router's count)" in mermaid.stdout


def test_show_exits_1_naming_the_directory_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(SAMPLE_YAML.replace('hub: "00.53.W00"', 'hub: "00.99.W00"'), "utf-8")
    result = runner.invoke(app, ["show", "--directory", str(path)])
    assert result.exit_code == 1
    assert "hub 00.99.W00 is not listed under hubs" in result.stderr


def test_apply_command_declares_the_topology_and_prints_the_report(
    amqp_url: str, sample_file: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    try:
        args = ["apply", "--directory", str(sample_file), "--prefix", prefix]
        result = runner.invoke(app, [*args, "--amqp-url", amqp_url])
        assert result.exit_code == 0, result.output
        assert re.search(
            r"declared 9 exchanges, 13 queues, \d+ bindings in [\d.]+ s", result.stdout
        )
        assert "guest:guest" not in result.stdout
    finally:
        asyncio.run(ManagementClient.from_env().delete_prefixed(prefix))


def test_docs_diagram_is_what_show_mermaid_prints_for_the_docs_sample_directory(
    tmp_path: Path,
) -> None:
    doc = (REPO / "docs" / "topology.md").read_text("utf-8")
    sample = re.search(r"<!-- sample-directory -->\n```yaml\n(.*?)```", doc, re.DOTALL)
    diagram = re.search(r"<!-- show-mermaid -->\n```mermaid\n(.*?)```", doc, re.DOTALL)
    assert sample is not None, "docs/topology.md lost its sample-directory marker"
    assert diagram is not None, "docs/topology.md lost its show-mermaid marker"
    path = tmp_path / "sample.yaml"
    path.write_text(sample.group(1), "utf-8")
    result = runner.invoke(app, ["show", "--directory", str(path), "--mermaid"])
    assert result.exit_code == 0, result.output
    assert result.stdout == diagram.group(1)
