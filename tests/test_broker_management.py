"""The management API client: broker users the broker holds to their ``user_id``, queue
depths and bindings, clean-up by prefix, and clear errors when the API is not there."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractChannel

from backbone.broker.management import ManagementClient, QueueBinding
from backbone.directory import DirectoryBuilder
from backbone.errors import BrokerUnavailableError
from backbone.router.topology import apply_topology
from backbone.wire.names import Names

G22, H53, HUB = "000.00.00.G22", "000.00.00.H53", "00.53.W00"


@pytest.fixture
def management() -> ManagementClient:
    return ManagementClient.from_env()


@pytest.fixture
async def names(management: ManagementClient) -> AsyncIterator[Names]:
    names = Names(prefix=f"t{uuid.uuid4().hex[:8]}")
    yield names
    await management.delete_prefixed(names.prefix)


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


@pytest.fixture
async def topology(channel: AbstractChannel, names: Names) -> Names:
    directory = DirectoryBuilder().direct(G22).hub(HUB, H53).via_hub(H53, HUB).build()
    await apply_topology(channel, directory, names)
    return names


@pytest.fixture
async def agency_user(management: ManagementClient, names: Names) -> AsyncIterator[tuple[str, str]]:
    """A broker user for G22 that may only publish to the submit exchange."""
    user, password = f"{names.prefix}-agency-{G22}", secrets.token_urlsafe(16)
    await management.create_user(user, password)
    await management.set_permissions(
        user, configure="^$", write=f"^{re.escape(names.submit_exchange)}$", read="^$"
    )
    yield user, password
    await management.delete_user(user)


def url_as(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def persistent(body: bytes, *, user_id: str | None = None) -> aio_pika.Message:
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, user_id=user_id)


async def test_a_created_user_publishes_under_its_own_user_id_and_not_under_another(
    amqp_url: str,
    channel: AbstractChannel,
    topology: Names,
    agency_user: tuple[str, str],
) -> None:
    user, password = agency_user
    connection = await aio_pika.connect(url_as(amqp_url, user, password))
    async with connection:
        as_agency = await connection.channel(publisher_confirms=True)
        submit = await as_agency.get_exchange(topology.submit_exchange, ensure=False)
        await submit.publish(
            persistent(b"mine", user_id=user), routing_key=topology.submit_routing_key
        )
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
            await submit.publish(
                persistent(b"forged", user_id=f"agency-{H53}"),
                routing_key=topology.submit_routing_key,
            )
    inbound = await channel.get_queue(topology.inbound_queue, ensure=False)
    received = await inbound.get(fail=False)
    assert received is not None
    assert (received.body, received.user_id) == (b"mine", user)
    await received.ack()
    assert await inbound.get(fail=False) is None  # the forged one never arrived


async def test_permissions_limit_a_user_to_the_resources_granted(
    amqp_url: str, topology: Names, agency_user: tuple[str, str]
) -> None:
    user, password = agency_user
    connection = await aio_pika.connect(url_as(amqp_url, user, password))
    async with connection:
        as_agency = await connection.channel(publisher_confirms=True)
        events = await as_agency.get_exchange(topology.events_exchange, ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await events.publish(persistent(b"x", user_id=user), routing_key="routed.x")


async def test_a_deleted_user_can_no_longer_connect(
    amqp_url: str, management: ManagementClient, names: Names
) -> None:
    user, password = f"{names.prefix}-gone", secrets.token_urlsafe(16)
    await management.create_user(user, password)
    await management.set_permissions(user, configure="^$", write="^$", read="^$")
    connection = await aio_pika.connect(url_as(amqp_url, user, password))
    await connection.close()

    assert await management.delete_user(user) is True
    assert await management.delete_user(user) is False
    with pytest.raises(aiormq.exceptions.AMQPConnectionError):
        await aio_pika.connect(url_as(amqp_url, user, password))


async def test_queue_depths_and_message_count_follow_what_was_published(
    channel: AbstractChannel, management: ManagementClient, topology: Names
) -> None:
    inbox = topology.inbox_queue(G22)
    for number in range(3):
        await channel.default_exchange.publish(persistent(b"%d" % number), routing_key=inbox)
    # Management counts are sampled statistics (every 5 s by default): wait for them.
    deadline = time.monotonic() + 20
    while await management.queue_message_count(inbox) != 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert await management.queue_message_count(inbox) == 3
    depths = await management.queue_depths(prefix=f"{topology.prefix}.")
    assert depths[inbox] == 3
    assert depths[topology.inbox_queue(HUB)] == 0
    assert set(depths) == set(await management.queue_names(prefix=f"{topology.prefix}."))


async def test_message_count_of_a_missing_queue_is_none(management: ManagementClient) -> None:
    assert await management.queue_message_count(f"nothing-{uuid.uuid4()}") is None


async def test_queue_bindings_lists_a_hubs_subtree_patterns_per_tier(
    management: ManagementClient, topology: Names
) -> None:
    bindings = await management.queue_bindings(topology.inbox_queue(HUB))
    exchanges = sorted(b.source for b in bindings)
    assert exchanges == sorted(
        f"{topology.prefix}.tier.{n}.{name}"
        for n, name in enumerate(
            ("central-provincial", "department-district", "commune", "unit"), 1
        )
    )
    assert {b.routing_key for b in bindings} == {"H53.#"}
    assert await management.queue_bindings(topology.inbound_queue) == [
        QueueBinding(topology.submit_exchange, "envelope", {})
    ]


async def test_queue_bindings_of_a_missing_queue_raise_lookup_error(
    management: ManagementClient,
) -> None:
    with pytest.raises(LookupError, match="does not exist"):
        await management.queue_bindings(f"nothing-{uuid.uuid4()}")


async def test_delete_prefixed_removes_that_prefix_only(
    channel: AbstractChannel, management: ManagementClient
) -> None:
    gone, kept = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    for prefix in (gone, kept):
        await channel.declare_exchange(f"{prefix}.x", "fanout", durable=True)
        await channel.declare_queue(
            f"{prefix}.q", durable=True, arguments={"x-queue-type": "quorum"}
        )
    try:
        assert await management.delete_prefixed(gone) == 2
        assert await management.queue_names(prefix=f"{gone}.") == []
        assert await management.exchange_names(prefix=f"{gone}.") == []
        assert await management.queue_names(prefix=f"{kept}.") == [f"{kept}.q"]
        assert await management.exchange_names(prefix=f"{kept}.") == [f"{kept}.x"]
    finally:
        await management.delete_prefixed(kept)


@pytest.mark.parametrize("prefix", ["", "vdx.", "amq"])
async def test_delete_prefixed_refuses_a_prefix_that_names_no_single_deployment(
    management: ManagementClient, prefix: str
) -> None:
    with pytest.raises(ValueError, match="refusing"):
        await management.delete_prefixed(prefix)


async def test_an_unreachable_api_says_how_to_enable_the_plugin() -> None:
    client = ManagementClient("http://127.0.0.1:1", timeout=2)
    with pytest.raises(BrokerUnavailableError, match="rabbitmq-plugins enable rabbitmq_management"):
        await client.version()


async def test_wrong_credentials_are_reported_as_unauthorised(
    management: ManagementClient,
) -> None:
    client = ManagementClient(management.base_url, management.username, "not-the-password")
    with pytest.raises(BrokerUnavailableError, match="HTTP 401"):
        await client.create_user("never-created", "x")


def test_from_env_takes_the_credentials_out_of_the_url() -> None:
    client = ManagementClient.from_env(
        {"VDX_MANAGEMENT_URL": "https://ops:s%40cret@mq.example.vn:15671/"}
    )
    assert (client.base_url, client.username, client.password) == (
        "https://mq.example.vn:15671",
        "ops",
        "s@cret",
    )
    assert "s@cret" not in repr(client)
    default = ManagementClient.from_env({})
    assert (default.base_url, default.username) == ("http://127.0.0.1:15672", "guest")


def test_a_non_http_management_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        ManagementClient("file:///etc/passwd")


class _Flaky(http.server.BaseHTTPRequestHandler):
    """A management API that fails ``failures`` requests with HTTP 500 before answering."""

    failures = 0
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        type(self).seen.append(self.command)
        if len(type(self).seen) <= type(self).failures:
            self.send_error(500, "Internal Server Error")
            return
        body = json.dumps([{"name": "vdx.router.inbound"}]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = _answer  # noqa: N815 - the names http.server calls

    def log_message(self, *_: object) -> None:  # quiet
        pass


@contextlib.contextmanager
def _flaky_api(failures: int) -> Iterator[ManagementClient]:
    _Flaky.failures, _Flaky.seen = failures, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ManagementClient(f"http://127.0.0.1:{server.server_port}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


async def test_a_listing_answered_500_is_asked_again_and_then_answered() -> None:
    with _flaky_api(failures=2) as client:
        assert await client.queue_names() == ["vdx.router.inbound"]
    assert _Flaky.seen == ["GET", "GET", "GET"]


async def test_a_listing_still_failing_after_its_retries_says_so() -> None:
    with _flaky_api(failures=10) as client, pytest.raises(BrokerUnavailableError, match="HTTP 500"):
        await client.queue_names()
    assert _Flaky.seen == ["GET"] * 4


async def test_a_write_answered_500_is_never_repeated() -> None:
    with _flaky_api(failures=1) as client, pytest.raises(BrokerUnavailableError, match="HTTP 500"):
        await client.delete_queue("vdx.router.inbound")
    assert _Flaky.seen == ["DELETE"]
